"""The one hand-written piece of DER: a value's identifier and length octets.

The CRL, OCSP and time-stamp writers join pre-encoded parts (made by cryptography or asn1crypto, or
stored) instead of building an object tree per response, which measured 10–100× slower on their hot
paths; they only need the header that wraps joined contents.
"""

from __future__ import annotations


def header(tag: int, length: int) -> bytes:
    """Identifier and definite-length octets (X.690 §8.1.2–8.1.3, DER: shortest form) of a one-byte
    ``tag`` whose contents are ``length`` bytes long."""
    if length < 0x80:
        return bytes((tag, length))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets


def tlv(tag: int, content: bytes) -> bytes:
    """``content`` wrapped as one DER value with ``tag``."""
    return header(tag, len(content)) + content
