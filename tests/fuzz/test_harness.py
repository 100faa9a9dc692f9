"""The harness itself: a stuck call is reported as a hang (with where it is stuck), a crash propagates,
a domain error is an outcome, and mutations stay derived from their seeds."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given

from eauth.errors import InvalidCsr
from tests.fuzz.harness import Hang, Watchdog, domain_outcome, fuzzing, mutated


def _stuck_forever() -> None:
    threading.Event().wait()


def test_a_stuck_call_is_a_hang_and_the_next_call_runs():
    watchdog = Watchdog(seconds=0.2)
    with pytest.raises(Hang, match="_stuck_forever"):
        watchdog.call(_stuck_forever)
    assert watchdog.call(lambda: 42) == 42  # on a fresh worker thread


def test_domain_errors_are_outcomes_and_crashes_propagate():
    watchdog = Watchdog()

    def refuse():
        raise InvalidCsr("no")

    assert isinstance(domain_outcome(watchdog, refuse), InvalidCsr)
    with pytest.raises(ZeroDivisionError):
        domain_outcome(watchdog, lambda: 1 / 0)


def test_mutations_keep_the_header():
    @fuzzing(examples=200)
    @given(data=mutated([b"%PDF-1.7\nbody of the document"], keep=9))
    def run(data: bytes) -> None:
        assert data.startswith(b"%PDF-1.7\n")

    run()
