"""The public API is exactly callrec.__all__, and every public name reads as callrec.X."""

from __future__ import annotations

import inspect
import typing

import callrec
import pytest


def test_all_lists_every_public_name_and_nothing_else() -> None:
    # ("@py_*" names appear because pytest rewrites asserts in its plugin's package, callrec.testing.)
    public = {name for name in dir(callrec) if not name.startswith(("_", "@"))}
    # Submodules that are public by design are not part of __all__.
    public -= {"testing", "otel"}
    assert public == set(callrec.__all__) - {"__version__"}


def test_exported_names_show_as_callrec_members() -> None:
    for name in callrec.__all__:
        obj = getattr(callrec, name)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert obj.__module__ == "callrec", name


def test_leg_is_exported_with_its_values() -> None:
    assert typing.get_args(callrec.Leg) == ("main", "supervisor")


@pytest.mark.parametrize(
    ("sync", "async_"),
    [(callrec.FeatherClient, callrec.AsyncFeatherClient), (callrec.SiroClient, callrec.AsyncSiroClient)],
)
def test_sync_and_async_clients_have_the_same_public_signatures(sync: type, async_: type) -> None:
    def public(cls: type) -> dict[str, str]:
        members = {}
        for name, member in inspect.getmembers(cls):
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(member, property):
                members[name] = str(inspect.signature(member.fget)).replace("Async", "").replace("AsyncLink", "Link")
            elif callable(member):
                members[name] = str(inspect.signature(member)).replace("AsyncLink", "Link").replace("Async", "")
        return members

    sync_members, async_members = public(sync), public(async_)
    # close/__enter__/__exit__ are aclose/__aenter__/__aexit__ in async.
    for a, b in (("close", "aclose"),):
        assert (a in sync_members) and (b in async_members)
        sync_members.pop(a), async_members.pop(b)
    assert sync_members == async_members


def test_error_tree_is_documented_in_the_errors_module() -> None:
    from callrec import _errors

    doc = _errors.__doc__ or ""
    for name in _errors.__all__:
        assert name in doc, f"{name} missing from the tree in callrec._errors"
        assert issubclass(getattr(callrec, name), callrec.CallrecError)
