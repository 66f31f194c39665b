#!/usr/bin/env python3
"""Apply an OpenAPI Overlay 1.0 document to an OpenAPI document.

Usage: python scripts/apply_overlay.py OPENAPI OVERLAY [-o FILE]

Targets are RFC 9535 JSONPath (python-jsonpath in strict mode). Actions run in
order: ``remove: true`` deletes every node the target selects (``remove:
false`` is the same as no ``remove``); otherwise ``update`` is deep-merged into
each selected object (objects merge, arrays append, scalars replace) or
appended to each selected array. A target that selects nothing is a no-op.
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
_VERSION = re.compile(r"^1\.0\.\d+$")


class OverlayError(Exception):
    """The overlay document is malformed or cannot be applied."""


def load_yaml(path: Path) -> Any:
    """Read a YAML (or JSON) file, raising OverlayError on failure."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise OverlayError(f"{path}: cannot read YAML ({exc.__class__.__name__})") from None


def validate_overlay(overlay: Any) -> list[dict[str, Any]]:
    """Check the Overlay 1.0 structure; return the actions with compiled targets."""
    if not isinstance(overlay, dict):
        raise OverlayError("overlay document must be a mapping")
    missing = [k for k in ("overlay", "info", "actions") if k not in overlay]
    if missing:
        raise OverlayError(f"overlay document is missing required field(s): {', '.join(missing)}")
    if not isinstance(overlay["overlay"], str) or not _VERSION.match(overlay["overlay"]):
        raise OverlayError(f"unsupported overlay version {overlay['overlay']!r}; expected 1.0.x")
    info = overlay["info"]
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("title", "version")):
        raise OverlayError("overlay info must have string 'title' and 'version'")
    actions = overlay["actions"]
    if not isinstance(actions, list) or not actions:
        raise OverlayError("overlay 'actions' must be a non-empty list")
    for i, action in enumerate(actions):
        if not isinstance(action, dict):
            raise OverlayError(f"action {i}: must be a mapping")
        target = action.get("target")
        if not isinstance(target, str):
            raise OverlayError(f"action {i}: 'target' is required and must be a string")
        try:
            _ENV.compile(target)
        except jsonpath.JSONPathError as exc:
            first = str(exc).splitlines()[0]
            raise OverlayError(f"action {i}: target {target!r} is not an RFC 9535 JSONPath: {first}") from None
        if "remove" in action and not isinstance(action["remove"], bool):
            raise OverlayError(f"action {i}: 'remove' must be a boolean")
        if "description" in action and not isinstance(action["description"], str):
            raise OverlayError(f"action {i}: 'description' must be a string")
    return actions


def _merge(target: Any, update: Any) -> Any:
    """Deep merge: objects merge key by key, arrays append, anything else replaces."""
    if isinstance(target, dict) and isinstance(update, dict):
        for key, value in update.items():
            target[key] = _merge(target[key], value) if key in target else copy.deepcopy(value)
        return target
    if isinstance(target, list):
        target.extend(copy.deepcopy(update) if isinstance(update, list) else [copy.deepcopy(update)])
        return target
    return copy.deepcopy(update)


def matches(document: Any, target: str) -> list[tuple[Any, ...]]:
    """Return the location (key/index tuple) of every node the target selects."""
    return [tuple(m.parts) for m in _ENV.finditer(target, document)]


def _node(document: Any, parts: tuple[Any, ...]) -> Any:
    node = document
    for part in parts:
        node = node[part]
    return node


def apply(document: Any, overlay: Any) -> Any:
    """Return a new document with the overlay's actions applied in order."""
    actions = validate_overlay(overlay)
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
        if "update" not in action:
            continue
        for parts in locations:
            node = _node(result, parts)
            if not isinstance(node, (dict, list)):
                raise OverlayError(
                    f"action {i}: target {action['target']!r} selects a {type(node).__name__}; "
                    "update needs an object or array"
                )
            if isinstance(node, dict) and not isinstance(action["update"], dict):
                raise OverlayError(f"action {i}: update for an object target must be a mapping")
            _merge(node, action["update"])
    return result


def dump(document: Any) -> str:
    """Serialise a document as YAML, keeping key order."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("openapi", type=Path, help="OpenAPI document (YAML or JSON)")
    parser.add_argument("overlay", type=Path, help="Overlay 1.0 document")
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
