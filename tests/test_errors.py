"""Every domain error survives pickling (process-pool workers raise them to the API process)."""

from __future__ import annotations

import pickle

import pytest

from eauth import errors


def _all(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all(sub)


@pytest.mark.parametrize("cls", [errors.EauthError, *_all(errors.EauthError)], ids=lambda c: c.__name__)
def test_errors_pickle(cls):
    error = (cls("bad number", scheme="gb11643", position=17) if cls is errors.InvalidIdentifier
             else cls("something failed", required="documents:sign"))
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls and str(back) == str(error) and back.args == error.args
    assert (back.code, back.kind, back.title, back.detail, back.extra) == (
        error.code, error.kind, error.title, error.detail, error.extra)
    if cls is errors.InvalidIdentifier:
        assert (back.scheme, back.position) == ("gb11643", 17)
