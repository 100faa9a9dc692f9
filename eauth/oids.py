"""Object identifiers the platform defines itself.

The platform's arc is a UUID OID (ITU-T X.667 / RFC 4122 §B: ``2.25.<UUID as an integer>``), which
anyone may allocate without registering it, so it never collides with another organisation's arc.
It was made once from the random UUID ``1cecb1de-1d87-44d8-9378-8ec26dd6fa57`` and must never change:
OIDs under it are written into signed objects that live for decades.

    PLATFORM_ARC          2.25.38447373524882383660498716527020145239
    PLATFORM_ARC.1        policies
    PLATFORM_ARC.1.1      time-stamping policy, version 1 (see docs/trust-model.md)

A deployment that has its own registered arc (an IANA private enterprise number, a national arc) sets
``EAUTH_TSA_POLICY_OID`` to an OID under it instead.
"""

from __future__ import annotations

PLATFORM_ARC = "2.25.38447373524882383660498716527020145239"
POLICIES_ARC = f"{PLATFORM_ARC}.1"
TSA_POLICY_V1 = f"{POLICIES_ARC}.1"
