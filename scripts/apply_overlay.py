#!/usr/bin/env python3
"""Apply an OpenAPI Overlay 1.0 or 1.1 document to an OpenAPI document.

Usage: python scripts/apply_overlay.py OPENAPI OVERLAY [-o FILE]

Targets are RFC 9535 JSONPath (python-jsonpath in strict mode). Actions run in
order, each on the result of the one before: ``remove: true`` deletes every
node the target selects (``remove: false`` is the same as no ``remove``);
otherwise ``update``, or with 1.1 the one node the ``copy`` JSONPath selects,
is deep-merged into each selected object (objects merge, arrays append,
scalars replace) or appended to each selected array. A target that selects
nothing is a no-op.

The ``overlay`` field picks the rules (https://spec.openapis.org/overlay/):

- 1.0.x: as before 1.1 existed. Targets must select objects or arrays; a
  merge replaces whatever it cannot merge.
- 1.1.x: ``copy`` (exclusive with ``update`` and ``remove: true``; its source
  must select exactly one node), ``info.description``, ``update`` on primitive
  targets (replaced), and the 1.1 merge: a target's nodes must all be objects,
  all arrays or all primitives, and merging an object into a primitive (or any
  other mismatched pair) is an error instead of a replacement.

A 1.0 document that uses ``copy`` is refused rather than applied with 1.1
rules: 1.0 tools ignore the field, so the same document would mean different
things to different tools. Bump it to ``overlay: 1.1.0``.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import jsonpath
import yaml

_ENV = jsonpath.JSONPathEnvironment(strict=True)
_VERSION = re.compile(r"^1\.(?P<minor>[01])\.\d+$")


class OverlayError(Exception):
    """The overlay document is malformed or cannot be applied."""


def load_yaml(path: Path) -> Any:
    """Read a YAML (or JSON) file, raising OverlayError on failure."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise OverlayError(f"{path}: cannot read YAML ({exc.__class__.__name__})") from None


def feature_set(overlay: Any) -> tuple[int, int]:
    """The (major, minor) rules an overlay document asks for: (1, 0) or (1, 1)."""
    version = overlay.get("overlay") if isinstance(overlay, dict) else None
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        raise OverlayError(f"unsupported overlay version {version!r}; expected 1.0.x or 1.1.x")
    return (1, int(match.group("minor")))


def _check_jsonpath(i: int, field: str, expression: Any) -> None:
    if not isinstance(expression, str):
        required = " is required and" if field == "target" else ""
        raise OverlayError(f"action {i}: {field!r}{required} must be a string")
    try:
        _ENV.compile(expression)
    except jsonpath.JSONPathError as exc:
        first = str(exc).splitlines()[0]
        raise OverlayError(f"action {i}: {field} {expression!r} is not an RFC 9535 JSONPath: {first}") from None


def validate_overlay(overlay: Any) -> list[dict[str, Any]]:
    """Check the Overlay 1.0/1.1 structure; return the actions."""
    if not isinstance(overlay, dict):
        raise OverlayError("overlay document must be a mapping")
    missing = [k for k in ("overlay", "info", "actions") if k not in overlay]
    if missing:
        raise OverlayError(f"overlay document is missing required field(s): {', '.join(missing)}")
    version = feature_set(overlay)
    info = overlay["info"]
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("title", "version")):
        raise OverlayError("overlay info must have string 'title' and 'version'")
    if version >= (1, 1) and "description" in info and not isinstance(info["description"], str):
        raise OverlayError("overlay info 'description' must be a string")
    actions = overlay["actions"]
    if not isinstance(actions, list) or not actions:
        raise OverlayError("overlay 'actions' must be a non-empty list")
    for i, action in enumerate(actions):
        if not isinstance(action, dict):
            raise OverlayError(f"action {i}: must be a mapping")
        _check_jsonpath(i, "target", action.get("target"))
        if "remove" in action and not isinstance(action["remove"], bool):
            raise OverlayError(f"action {i}: 'remove' must be a boolean")
        if "description" in action and not isinstance(action["description"], str):
            raise OverlayError(f"action {i}: 'description' must be a string")
        if "copy" in action:
            if version < (1, 1):
                raise OverlayError(
                    f"action {i}: 'copy' is an Overlay 1.1 action; this document says overlay "
                    f"{overlay['overlay']} (use overlay: 1.1.0)"
                )
            _check_jsonpath(i, "copy", action["copy"])
            if "update" in action:
                raise OverlayError(f"action {i}: 'copy' and 'update' cannot be used together")
            if action.get("remove") is True:
                raise OverlayError(f"action {i}: 'copy' and 'remove: true' cannot be used together")
    return actions


def _merge(target: Any, update: Any) -> Any:
    """Overlay 1.0 deep merge: objects merge key by key, arrays append, anything else replaces."""
    if isinstance(target, dict) and isinstance(update, dict):
        for key, value in update.items():
            target[key] = _merge(target[key], value) if key in target else copy.deepcopy(value)
        return target
    if isinstance(target, list):
        target.extend(copy.deepcopy(update) if isinstance(update, list) else [copy.deepcopy(update)])
        return target
    return copy.deepcopy(update)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "primitive"


def _path(parts: tuple[Any, ...]) -> str:
    """An RFC 9535 normalized path, for messages."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else "['" + str(p).replace("'", "\\'") + "']" for p in parts)


def _merge_1_1(target: dict[str, Any], value: dict[str, Any], at: tuple[Any, ...], what: str) -> None:
    """Overlay 1.1 merge: only object+object, array+array and primitive+primitive combine; the rest is an error."""
    for key, new in value.items():
        if key not in target:
            target[key] = copy.deepcopy(new)
            continue
        old = target[key]
        if isinstance(old, dict) and isinstance(new, dict):
            _merge_1_1(old, new, (*at, key), what)
        elif isinstance(old, list) and isinstance(new, list):
            old.extend(copy.deepcopy(new))
        elif _kind(old) == _kind(new) == "primitive":
            target[key] = copy.deepcopy(new)
        else:
            raise OverlayError(f"{what}: cannot merge {_kind(new)} into the {_kind(old)} at {_path((*at, key))}")


def _node(document: Any, parts: tuple[Any, ...]) -> Any:
    node = document
    for part in parts:
        node = node[part]
    return node


def matches(document: Any, target: str) -> list[tuple[Any, ...]]:
    """Return the location (key/index tuple) of every node the target selects."""
    return [tuple(m.parts) for m in _ENV.finditer(target, document)]


def _update_1_0(document: Any, i: int, action: dict[str, Any], locations: list[tuple[Any, ...]]) -> None:
    for parts in locations:
        node = _node(document, parts)
        if not isinstance(node, (dict, list)):
            raise OverlayError(
                f"action {i}: target {action['target']!r} selects a {type(node).__name__}; "
                "update needs an object or array"
            )
        if isinstance(node, dict) and not isinstance(action["update"], dict):
            raise OverlayError(f"action {i}: update for an object target must be a mapping")
        _merge(node, action["update"])


def _copy_source(document: Any, i: int, source: str) -> Any:
    found = matches(document, source)
    if len(found) != 1:
        count = "nothing" if not found else f"{len(found)} nodes"
        raise OverlayError(f"action {i}: copy source {source!r} selects {count}; it must select exactly one node")
    return copy.deepcopy(_node(document, found[0]))


def _update_1_1(document: Any, i: int, action: dict[str, Any], locations: list[tuple[Any, ...]]) -> Any:
    """Merge the action's update or copied node into every target node; return the (possibly new) document."""
    if "copy" in action:
        what, value = f"action {i}: copy", _copy_source(document, i, action["copy"])
    else:
        what, value = f"action {i}: update", action["update"]
    kinds = sorted({_kind(_node(document, parts)) for parts in locations})
    if len(kinds) > 1:
        raise OverlayError(
            f"action {i}: target {action['target']!r} selects a mix of {' and '.join(kinds)} nodes; "
            "they must be all objects, all arrays or all primitives"
        )
    for parts in locations:
        node = _node(document, parts)
        if isinstance(node, dict):
            if not isinstance(value, dict):
                raise OverlayError(f"{what}: target {_path(parts)} is an object, so the value must be an object")
            _merge_1_1(node, value, parts, what)
        elif isinstance(node, list):
            node.extend(copy.deepcopy(value) if isinstance(value, list) else [copy.deepcopy(value)])
        elif _kind(value) != "primitive":
            raise OverlayError(f"{what}: target {_path(parts)} is a primitive, so the value must be a primitive")
        elif parts:
            _node(document, parts[:-1])[parts[-1]] = copy.deepcopy(value)
        else:
            document = copy.deepcopy(value)
    return document


def apply(document: Any, overlay: Any) -> Any:
    """Return a new document with the overlay's actions applied in order."""
    actions = validate_overlay(overlay)
    version = feature_set(overlay)
    result = copy.deepcopy(document)
    for i, action in enumerate(actions):
        locations = matches(result, action["target"])
        if action.get("remove") is True:
            # Delete deepest and highest-index nodes first so earlier locations stay valid.
            def order(p: tuple[Any, ...]) -> tuple[int, int]:
                return (len(p), p[-1] if p and isinstance(p[-1], int) else -1)

            for parts in sorted(locations, key=order, reverse=True):
                if not parts:
                    raise OverlayError(f"action {i}: cannot remove the document root")
                del _node(result, parts[:-1])[parts[-1]]
            continue
        if not locations or ("update" not in action and "copy" not in action):
            continue  # selecting nothing succeeds without a change, whatever the copy source says
        if version >= (1, 1):
            result = _update_1_1(result, i, action, locations)
        else:
            _update_1_0(result, i, action, locations)
    return result


def dump(document: Any) -> str:
    """Serialise a document as YAML, keeping key order."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("openapi", type=Path, help="OpenAPI document (YAML or JSON)")
    parser.add_argument("overlay", type=Path, help="Overlay 1.0 or 1.1 document")
    parser.add_argument("-o", "--output", type=Path, help="write the result here instead of stdout")
    args = parser.parse_args(argv)
    try:
        result = dump(apply(load_yaml(args.openapi), load_yaml(args.overlay)))
    except OverlayError as exc:
        print(f"apply_overlay: {args.overlay}: {exc}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(result, encoding="utf-8")
    else:
        sys.stdout.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
