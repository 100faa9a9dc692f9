"""The fuzzing harness: inputs (random bytes and mutations of valid ones), a hang detector, and the
bound on how long CI fuzzes (issue 8; docs/fuzzing.md).

``EAUTH_FUZZ_EXAMPLES`` multiplies every target's examples (``make soak``); ``EAUTH_FUZZ_SEED`` (an
integer) draws other inputs where CI is derandomized (the same inputs every run);
``EAUTH_FUZZ_HANG_SECONDS`` is how long one call may take before it counts as a hang.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st

from eauth.errors import EauthError

T = TypeVar("T")

SCALE = max(1, int(os.environ.get("EAUTH_FUZZ_EXAMPLES", "1")))
SEED = os.environ.get("EAUTH_FUZZ_SEED")
#: Every call under test takes milliseconds; one that has not returned after this is stuck.
HANG_SECONDS = float(os.environ.get("EAUTH_FUZZ_HANG_SECONDS", "30"))


def fuzzing(examples: int) -> Callable:
    """Hypothesis settings for a fuzz target: ``examples`` × the soak scale, no deadline (the
    watchdog detects hangs instead), derandomized unless a seed is asked for."""

    def decorate(test: Callable) -> Callable:
        test = settings(max_examples=examples * SCALE, deadline=None, derandomize=SEED is None, database=None,
                        suppress_health_check=list(HealthCheck), print_blob=True,
                        phases=[Phase.explicit, Phase.generate, Phase.shrink])(test)
        if SEED is not None:
            test = seed(int(SEED))(test)
        return test

    return decorate


# -- inputs ------------------------------------------------------------------------------------------

_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0xFF, 0x30, 0xA0, 0x02, 0x04, 0x05, 0x06)


@st.composite
def mutated(draw, seeds: Sequence[bytes], *, keep: int = 0) -> bytes:
    """One of ``seeds`` after 1–4 mutations: bit flips, interesting bytes (DER tags and lengths),
    truncation, insertion and deletion, duplicated chunks and splices with another seed. The first
    ``keep`` bytes stay (a file header, so that mutations reach the parser behind it)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        if len(data) <= keep:
            data.extend(draw(st.binary(min_size=1, max_size=16)))
            continue
        at = draw(st.integers(keep, len(data) - 1))
        kind = draw(st.sampled_from(("flip", "byte", "truncate", "insert", "delete", "duplicate", "splice")))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.sampled_from(_INTERESTING) | st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            chunk = data[at:at + draw(st.integers(1, 256))]
            data[draw(st.integers(keep, len(data))):0] = chunk
        else:
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data[at:] = other[cut:]
    return bytes(data)


def inputs(seeds: Sequence[bytes], *, max_random: int = 4096, header: bytes = b"") -> st.SearchStrategy[bytes]:
    """Random bytes (after ``header``), the valid seeds themselves, and (mostly) their mutations
    (which keep the header)."""
    random = st.binary(max_size=max_random).map(lambda data: header + data)
    return st.one_of(random, st.sampled_from(seeds), mutated(seeds, keep=len(header)),
                     mutated(seeds, keep=len(header)))


def text_inputs(seeds: Sequence[str]) -> st.SearchStrategy[str]:
    """Strings: random text, and mutations of ``seeds`` (ASCII tokens) decoded leniently."""
    return st.one_of(st.text(max_size=512),
                     inputs([s.encode() for s in seeds], max_random=512).map(lambda b: b.decode("latin-1")))


# -- the hang detector -------------------------------------------------------------------------------


class Hang(AssertionError):
    """A call under test did not return in time."""


@dataclass
class _Job:
    function: Callable[..., Any]
    args: tuple
    kwargs: dict
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class Watchdog:
    """Runs each call on a worker thread and raises ``Hang`` (with the stuck thread's stack) when it has
    not returned within ``seconds``; a stuck worker is abandoned (a daemon thread) for a fresh one.
    One long-lived worker, so what is thread-bound (SQLite connections) stays on one thread."""

    def __init__(self, seconds: float = HANG_SECONDS) -> None:
        self.seconds = seconds
        self._jobs: queue.SimpleQueue[_Job] | None = None
        self._thread: threading.Thread | None = None

    def call(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._thread is None:
            self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._work, args=(self._jobs,), daemon=True, name="fuzz-call")
            self._thread.start()
        job = _Job(function, args, kwargs)
        self._jobs.put(job)
        if not job.done.wait(self.seconds):
            stack = "".join(traceback.format_stack(sys._current_frames()[self._thread.ident]))
            self._thread = None
            raise Hang(f"{getattr(function, '__qualname__', function)} did not return within {self.seconds:g} s:\n"
                       f"{stack}")
        if job.error is not None:
            raise job.error
        return job.value

    @staticmethod
    def _work(jobs: queue.SimpleQueue) -> None:
        while True:
            job = jobs.get()
            try:
                job.value = job.function(*job.args, **job.kwargs)
            except BaseException as exc:  # handed to the caller, who decides
                job.error = exc
            job.done.set()


def domain_outcome(watchdog: Watchdog, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T | EauthError:
    """The result of the call, or the domain error it raised; any other exception (a crash) and a hang
    propagate and fail the test."""
    try:
        return watchdog.call(function, *args, **kwargs)
    except EauthError as refused:
        return refused
