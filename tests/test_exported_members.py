"""The public API is exactly callrec.__all__, and every public name reads as callrec.X."""

from __future__ import annotations

import callrec


def test_all_lists_every_public_name_and_nothing_else() -> None:
    # ("@py_*" names appear because pytest rewrites asserts in its plugin's package, callrec.testing.)
    public = {name for name in dir(callrec) if not name.startswith(("_", "@"))}
    # Submodules that are public by design are not part of __all__.
    public -= {"testing"}
    assert public == set(callrec.__all__) - {"__version__"}


def test_exported_names_show_as_callrec_members() -> None:
    for name in callrec.__all__:
        obj = getattr(callrec, name)
        if hasattr(obj, "__module__") and not isinstance(obj, str):
            assert obj.__module__ == "callrec", name


def test_error_tree_is_documented_in_the_errors_module() -> None:
    from callrec import _errors

    doc = _errors.__doc__ or ""
    for name in _errors.__all__:
        assert name in doc, f"{name} missing from the tree in callrec._errors"
        assert issubclass(getattr(callrec, name), callrec.CallrecError)
