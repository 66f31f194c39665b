#!/usr/bin/env python3
"""Classify the differences between two OpenAPI 3.x documents for client users.

Usage: python scripts/spec_diff.py OLD NEW [--overlay FILE]

Prints one change per line, ``BREAKING: <location>: <what>`` or
``NON-BREAKING: ...``, or ``no changes``; exits 1 if anything is breaking.
"Breaking" is judged for users of the generated client and of the overlay
client built on it. Local ``$ref``s are resolved before comparing, so moving a
schema into components is not a change. Operations are compared parameter by
parameter, request body and response by status, schemas recursively (objects,
arrays, anyOf/oneOf, allOf merged):

BREAKING
  - an operation or path removed (a rename is a removal plus an addition)
  - a parameter removed, added as required, made required, its type changed,
    or its enum narrowed (values removed); the same for request body properties
  - a request body removed, added as required or made required
  - a response property removed, its type changed, made optional or nullable;
    an enum value added to or removed from a response (generated models reject
    unknown values); a new anyOf/oneOf variant in a response
  - a success (2xx) response or its media type removed
  - a used security scheme removed or changed (type, scheme, ``in``, name), or an
    operation's security requirement changed
  - the first tag changed (the generated module is named after it)
  - after the overlay: an operationId or a component schema name changed or
    gone (generated names change); an overlay action whose target matched
    before but matches nothing now; an overlay that no longer applies (a
    1.1 ``copy`` source gone, say) or gives an invalid spec
  - a vendor change the overlaid spec does not follow (an overlay's named copy
    of a schema hiding it) is reported a second time, "the overlaid spec
    disagrees with the vendor's (fix the overlay): ...", with the vendor
    line's verdict: hidden means the vendor's report has the line and the
    report between the two overlaid specs does not. So a change both show
    alike (a new error status, whatever an overlay action does to its body)
    is not reported twice, and nothing the vendor left alone is reported.
NON-BREAKING
  - new operations, paths, optional parameters, optional request properties,
    response properties, success or error statuses; error statuses removed;
    enums widened in requests; server URLs added or removed; summaries,
    descriptions, examples, defaults, constraints, info and deprecation changes
  - the first server's URL (``{variables}`` at their defaults) changed, added
    or removed, reported as ``default base URL changes for users: OLD → NEW``:
    it is the default base URL of the generated clients, so users who pass no
    ``base_url`` are sent to the new one

Lists whose order carries no meaning (``required``, ``enum``, ``tags``,
``parameters``, ``security``) are compared as sets. If none of the rules above
fires but the parsed documents still differ, each differing value is reported
as NON-BREAKING so "no changes" always means semantically identical.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import apply_overlay
import extract_spec

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON = "application/json"
# Keys whose list values are sets for our purposes (order never reaches clients).
_SETLIKE = frozenset({"required", "enum", "tags", "security"})
_CONSTRAINTS = (
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems",
)  # fmt: skip

Direction = Literal["request", "response"]


class DiffError(Exception):
    """A document cannot be compared (for example a dangling or remote $ref)."""


@dataclass(frozen=True)
class Change:
    """One reported difference; ``str()`` is the report line."""

    breaking: bool
    location: str
    message: str
    cosmetic: bool = False  # documentation only: summaries, descriptions, titles, examples

    def __str__(self) -> str:
        label = "BREAKING" if self.breaking else "NON-BREAKING"
        return f"{label}: {self.location}: {self.message}" if self.location else f"{label}: {self.message}"


def _fmt(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class _Doc:
    """A document whose local $refs can be followed."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def deref(self, node: Any) -> tuple[Any, str | None]:
        """Follow a chain of $refs; return the target and the last ref followed."""
        ref: str | None = None
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise DiffError(f"$ref cycle at {ref!r}")
            seen.add(ref)
            node = self._pointer(ref)
        return node, ref

    def _pointer(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise DiffError(f"unsupported $ref {ref!r}: only local '#/...' references are resolved")
        node = self.doc
        try:
            for raw in ref[2:].split("/"):
                part = raw.replace("~1", "/").replace("~0", "~")
                node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise DiffError(f"dangling $ref {ref!r}") from None
        return node


def _nullable(schema: dict[str, Any]) -> bool:
    types = schema.get("type")
    return schema.get("nullable") is True or (isinstance(types, list) and "null" in types)


def _kind(schema: dict[str, Any]) -> str:
    """A short name for what a schema's values look like: string(date-time), object, anyOf, ..."""
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return combinator
    types = schema.get("type")
    if isinstance(types, list):
        named = sorted(str(t) for t in types if t != "null")
        kind = "|".join(named) if named else "null"
    elif isinstance(types, str):
        kind = types
    elif "properties" in schema:
        kind = "object"
    elif "items" in schema:
        kind = "array"
    else:
        kind = "any"
    fmt = schema.get("format")
    return f"{kind}({fmt})" if fmt else kind


def _subject(where: str, root: str, prop: str) -> str:
    if not prop:
        return root
    if prop.startswith("["):
        return f"{root}{prop}"
    return f"{where} property '{prop}'"


def _join(prop: str, name: str) -> str:
    return f"{prop}.{name}" if prop else name


def _words(text: str, count: int = 6) -> str:
    words = text.split()
    return " ".join(words[:count]) + (" ..." if len(words) > count else "")


def _server_url(server: dict[str, Any]) -> str:
    """A Server Object's URL with each ``{variable}`` replaced by its default, as clients use it."""
    url = str(server.get("url"))
    for name, variable in (server.get("variables") or {}).items():
        if isinstance(variable, dict) and "default" in variable:
            url = url.replace(f"{{{name}}}", str(variable["default"]))
    return url


def _is_success(status: str) -> bool:
    return status.startswith("2")


def _security(requirements: Any) -> frozenset[frozenset[tuple[str, tuple[str, ...]]]]:
    if not isinstance(requirements, list):
        return frozenset()
    return frozenset(
        frozenset((name, tuple(sorted(scopes or []))) for name, scopes in req.items())
        for req in requirements
        if isinstance(req, dict)
    )


def _fmt_security(reqs: frozenset[frozenset[tuple[str, tuple[str, ...]]]]) -> str:
    if not reqs:
        return "none"
    alternatives = sorted(" and ".join(sorted(name for name, _ in req)) or "anonymous" for req in reqs)
    return " or ".join(alternatives)


class _Differ:
    def __init__(self, old: Any, new: Any) -> None:
        self.old, self.new = _Doc(old), _Doc(new)
        self.changes: list[Change] = []
        self.location = ""

    def add(self, breaking: bool, message: str, location: str | None = None, *, cosmetic: bool = False) -> None:
        self.changes.append(Change(breaking, self.location if location is None else location, message, cosmetic))

    # -- whole document ------------------------------------------------------

    def run(self) -> list[Change]:
        old, new = self.old.doc, self.new.doc
        self._info(old.get("info") or {}, new.get("info") or {})
        self._servers(old.get("servers") or [], new.get("servers") or [])
        self._schemes()
        old_paths, new_paths = old.get("paths") or {}, new.get("paths") or {}
        for path in old_paths:
            if path not in new_paths:
                methods = sorted(m.upper() for m in (old_paths[path] or {}) if m in METHODS)
                self.add(True, f"path removed ({', '.join(methods)})", location=path)
        for path in new_paths:
            if path not in old_paths:
                methods = sorted(m.upper() for m in (new_paths[path] or {}) if m in METHODS)
                self.add(False, f"path added ({', '.join(methods)})", location=path)
        for path in old_paths:
            if path in new_paths:
                self._path(path, old_paths[path] or {}, new_paths[path] or {})
        return self.changes

    def _info(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for field in ("title", "version"):
            if old.get(field) != new.get(field):
                self.add(False, f"{field} changed {_fmt(old.get(field))} → {_fmt(new.get(field))}", "info")
        if old.get("description") != new.get("description"):
            self.add(False, "description changed", "info", cosmetic=True)

    def _servers(self, old: list[Any], new: list[Any]) -> None:
        old_urls = [_server_url(s) for s in old if isinstance(s, dict)]
        new_urls = [_server_url(s) for s in new if isinstance(s, dict)]
        old_default = old_urls[0] if old_urls else None
        new_default = new_urls[0] if new_urls else None
        if old_default != new_default:
            # The first server is the generated clients' default base URL: said once, plainly.
            none = "none (the spec lists no servers)"
            self.add(
                False, f"default base URL changes for users: {old_default or none} → {new_default or none}", "servers"
            )
        for url in old_urls:
            if url not in new_urls and url != old_default:
                self.add(False, f"server URL {url} removed", "servers")
        for url in new_urls:
            if url not in old_urls and url != new_default:
                self.add(False, f"server URL {url} added", "servers")

    def _used_schemes(self) -> set[str]:
        used: set[str] = set()
        doc = self.old.doc
        for item in (doc.get("paths") or {}).values():
            for method, op in (item or {}).items():
                if method in METHODS and isinstance(op, dict):
                    for req in _security(op.get("security", doc.get("security"))):
                        used.update(name for name, _ in req)
        return used

    def _schemes(self) -> None:
        old = (self.old.doc.get("components") or {}).get("securitySchemes") or {}
        new = (self.new.doc.get("components") or {}).get("securitySchemes") or {}
        used = self._used_schemes()
        for name, raw in old.items():
            where = f"security scheme '{name}'"
            if name not in new:
                self.add(name in used, "removed", where)
                continue
            o, _ = self.old.deref(raw)
            n, _ = self.new.deref(new[name])
            for field in ("type", "scheme", "in"):
                if o.get(field) != n.get(field):
                    self.add(True, f"{field} changed {_fmt(o.get(field))} → {_fmt(n.get(field))}", where)
            old_name, new_name = o.get("name"), n.get("name")
            if old_name != new_name:
                case_only = (
                    o.get("in") == n.get("in") == "header"
                    and isinstance(old_name, str)
                    and isinstance(new_name, str)
                    and old_name.lower() == new_name.lower()
                )
                suffix = " (case only; HTTP header names are case-insensitive)" if case_only else ""
                self.add(
                    not case_only, f"{o.get('in')} name changed {_fmt(old_name)} → {_fmt(new_name)}{suffix}", where
                )
            if o.get("description") != n.get("description"):
                self.add(False, "description changed", where, cosmetic=True)
        for name in new:
            if name not in old:
                self.add(False, "added", f"security scheme '{name}'")

    # -- operations ------------------------------------------------------------

    def _path(self, path: str, old_item: dict[str, Any], new_item: dict[str, Any]) -> None:
        old_item, _ = self.old.deref(old_item)
        new_item, _ = self.new.deref(new_item)
        for method in METHODS:
            o, n = old_item.get(method), new_item.get(method)
            self.location = f"{method.upper()} {path}"
            if o is not None and n is None:
                self.add(True, "operation removed")
            elif o is None and n is not None:
                self.add(False, "operation added")
            elif o is not None and n is not None:
                self._operation(old_item, new_item, o, n)
        self.location = ""

    def _operation(
        self, old_item: dict[str, Any], new_item: dict[str, Any], o: dict[str, Any], n: dict[str, Any]
    ) -> None:
        for field in ("summary", "description"):
            if o.get(field) != n.get(field):
                self.add(False, f"{field} changed", cosmetic=True)
        if bool(o.get("deprecated")) != bool(n.get("deprecated")):
            self.add(False, "deprecated" if n.get("deprecated") else "no longer deprecated")
        old_tags, new_tags = o.get("tags") or [], n.get("tags") or []
        if old_tags[:1] != new_tags[:1]:
            self.add(
                True, f"first tag changed {old_tags[:1]} → {new_tags[:1]} (the generated module is named after it)"
            )
        elif sorted(map(str, old_tags)) != sorted(map(str, new_tags)):
            self.add(False, f"tags changed {old_tags} → {new_tags}")
        old_sec = _security(o.get("security", self.old.doc.get("security")))
        new_sec = _security(n.get("security", self.new.doc.get("security")))
        if old_sec != new_sec:
            self.add(True, f"security requirement changed {_fmt_security(old_sec)} → {_fmt_security(new_sec)}")
        self._parameters(self._params(self.old, old_item, o), self._params(self.new, new_item, n))
        self._request_body(o.get("requestBody"), n.get("requestBody"))
        self._responses(o.get("responses") or {}, n.get("responses") or {})

    # -- parameters ------------------------------------------------------------

    @staticmethod
    def _params(doc: _Doc, item: dict[str, Any], op: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        params: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
            param, _ = doc.deref(raw)
            where, name = str(param.get("in")), str(param.get("name"))
            params[(where, name.lower() if where == "header" else name)] = param
        return params

    @staticmethod
    def _param_schema(param: dict[str, Any]) -> Any:
        if "schema" in param:
            return param["schema"]
        content: dict[str, Any] = param.get("content") or {}
        for media in content.values():
            return (media or {}).get("schema")
        return None

    def _parameters(self, old: dict[tuple[str, str], Any], new: dict[tuple[str, str], Any]) -> None:
        for key, o in old.items():
            label = f"{key[0]} parameter '{o.get('name')}'"
            if key not in new:
                self.add(True, f"{label} removed (the generated function loses the argument)")
                continue
            n = new[key]
            if not o.get("required") and n.get("required"):
                self.add(True, f"{label} made required")
            elif o.get("required") and not n.get("required"):
                self.add(False, f"{label} made optional")
            if o.get("description") != n.get("description"):
                self.add(False, f"{label} description changed", cosmetic=True)
            if bool(o.get("deprecated")) != bool(n.get("deprecated")):
                self.add(False, f"{label} {'deprecated' if n.get('deprecated') else 'no longer deprecated'}")
            for field in ("style", "explode"):
                if o.get(field) != n.get(field):
                    self.add(True, f"{label} {field} changed {_fmt(o.get(field))} → {_fmt(n.get(field))}")
            self._schema(self._param_schema(o), self._param_schema(n), label, label, "", "request", frozenset())
        for key, n in new.items():
            if key not in old:
                label = f"{key[0]} parameter '{n.get('name')}'"
                if n.get("required"):
                    self.add(True, f"{label} added as required")
                else:
                    self.add(False, f"{label} added (optional)")

    # -- request bodies ----------------------------------------------------------

    def _request_body(self, old_raw: Any, new_raw: Any) -> None:
        if old_raw is None and new_raw is None:
            return
        if new_raw is None:
            self.add(True, "request body removed")
            return
        n, _ = self.new.deref(new_raw)
        if old_raw is None:
            self.add(
                bool(n.get("required")), "request body added" + (" as required" if n.get("required") else " (optional)")
            )
            return
        o, _ = self.old.deref(old_raw)
        if not o.get("required") and n.get("required"):
            self.add(True, "request body made required")
        elif o.get("required") and not n.get("required"):
            self.add(False, "request body made optional")
        if o.get("description") != n.get("description"):
            self.add(False, "request body description changed", cosmetic=True)
        self._content(o.get("content") or {}, n.get("content") or {}, "request body", "request", needed=True)

    def _content(
        self, old: dict[str, Any], new: dict[str, Any], where: str, direction: Direction, *, needed: bool
    ) -> None:
        for media in old:
            if media not in new:
                self.add(needed, f"{where} media type {media} removed")
        for media in new:
            if media not in old:
                self.add(False, f"{where} media type {media} added")
        for media, o in old.items():
            if media in new:
                o, n = o or {}, new[media] or {}
                label = where if media == JSON else f"{where} ({media})"
                root = label if direction == "request" else f"{label} body"
                self._schema(o.get("schema"), n.get("schema"), label, root, "", direction, frozenset())
                if o.get("example") != n.get("example") or o.get("examples") != n.get("examples"):
                    self.add(False, f"{root} example changed", cosmetic=True)

    # -- responses -------------------------------------------------------------

    def _responses(self, old: dict[Any, Any], new: dict[Any, Any]) -> None:
        old = {str(k): v for k, v in old.items()}
        new = {str(k): v for k, v in new.items()}
        for status in old:
            if status not in new:
                if _is_success(status):
                    self.add(True, f"success response {status} removed")
                else:
                    self.add(False, f"error response {status} removed")
        for status in new:
            if status not in old:
                kind = "success" if _is_success(status) else "error"
                self.add(False, f"{kind} response {status} added")
        for status, raw in old.items():
            if status not in new:
                continue
            o, _ = self.old.deref(raw)
            n, _ = self.new.deref(new[status])
            if o.get("description") != n.get("description"):
                self.add(False, f"response {status} description changed", cosmetic=True)
            where = f"response {status}"
            self._content(o.get("content") or {}, n.get("content") or {}, where, "response", needed=_is_success(status))

    # -- schemas ---------------------------------------------------------------

    def _merged(self, doc: _Doc, schema: Any) -> dict[str, Any]:
        """Resolve $refs and fold allOf members into one schema."""
        schema, _ = doc.deref(schema)
        if not isinstance(schema, dict):
            return {}
        if "allOf" not in schema:
            return schema
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            sub = self._merged(doc, part)
            props = {**(sub.get("properties") or {}), **(merged.get("properties") or {})}
            required = [*(merged.get("required") or []), *(sub.get("required") or [])]
            merged = {**sub, **merged}
            if props:
                merged["properties"] = props
            if required:
                merged["required"] = required
        return merged

    def _schema(
        self,
        old_raw: Any,
        new_raw: Any,
        where: str,
        root: str,
        prop: str,
        direction: Direction,
        seen: frozenset[tuple[str, str]],
    ) -> None:
        if old_raw is None and new_raw is None:
            return
        _, old_ref = self.old.deref(old_raw)
        _, new_ref = self.new.deref(new_raw)
        if old_ref and new_ref:
            if (old_ref, new_ref) in seen:  # recursive schema: already being compared
                return
            seen = seen | {(old_ref, new_ref)}
        o, n = self._merged(self.old, old_raw), self._merged(self.new, new_raw)
        subject = _subject(where, root, prop)
        old_kind, new_kind = _kind(o), _kind(n)
        if old_kind != new_kind:
            self.add(True, f"{subject} type changed {old_kind} → {new_kind}")
            return
        response = direction == "response"
        if _nullable(o) != _nullable(n):
            now = _nullable(n)
            self.add(now == response, f"{subject} {'may now be null' if now else 'no longer nullable'}")
        self._enum(o, n, subject, response)
        if o.get("default") != n.get("default"):
            self.add(False, f"{subject} default changed {_fmt(o.get('default'))} → {_fmt(n.get('default'))}")
        for field in ("description", "title"):
            if o.get(field) != n.get(field):
                self.add(False, f"{subject} {field} changed", cosmetic=True)
        if o.get("example") != n.get("example") or o.get("examples") != n.get("examples"):
            self.add(False, f"{subject} example changed", cosmetic=True)
        for field in _CONSTRAINTS:
            if o.get(field) != n.get(field):
                self.add(False, f"{subject} {field} changed {_fmt(o.get(field))} → {_fmt(n.get(field))}")
        if "properties" in o or "properties" in n:
            self._properties(o, n, where, root, prop, direction, seen)
        if "items" in o or "items" in n:
            self._schema(o.get("items"), n.get("items"), where, root, f"{prop}[]", direction, seen)
        if old_kind in ("anyOf", "oneOf"):
            self._variants(o[old_kind], n[new_kind], where, root, prop, direction, seen, old_kind)

    def _enum(self, o: dict[str, Any], n: dict[str, Any], subject: str, response: bool) -> None:
        if "enum" not in o and "enum" not in n:
            return
        if "enum" not in o:
            self.add(True, f"{subject} enum added {[*n['enum']]} (other values are now rejected)")
            return
        if "enum" not in n:
            suffix = " (any value may now arrive)" if response else " (any value accepted)"
            self.add(response, f"{subject} enum removed{suffix}")
            return
        old_values = {_key(v): v for v in o["enum"]}
        new_values = {_key(v): v for v in n["enum"]}
        for key, value in old_values.items():
            if key not in new_values:
                what = "enum value" if response else "enum narrowed: value"
                self.add(True, f"{subject} {what} {_fmt(value)} removed")
        for key, value in new_values.items():
            if key not in old_values:
                if response:
                    self.add(True, f"{subject} enum value {_fmt(value)} added (generated models reject unknown values)")
                else:
                    self.add(False, f"{subject} enum widened: value {_fmt(value)} added")

    def _properties(
        self,
        o: dict[str, Any],
        n: dict[str, Any],
        where: str,
        root: str,
        prop: str,
        direction: Direction,
        seen: frozenset[tuple[str, str]],
    ) -> None:
        old_props, new_props = o.get("properties") or {}, n.get("properties") or {}
        old_req, new_req = set(o.get("required") or []), set(n.get("required") or [])
        response = direction == "response"
        for name in old_props:
            subject = _subject(where, root, _join(prop, name))
            if name not in new_props:
                self.add(True, f"{subject} removed")
                continue
            if name in old_req and name not in new_req:
                self.add(response, f"{subject} made optional (was required)")
            elif name not in old_req and name in new_req:
                self.add(not response, f"{subject} made required")
            self._schema(old_props[name], new_props[name], where, root, _join(prop, name), direction, seen)
        for name in new_props:
            if name not in old_props:
                subject = _subject(where, root, _join(prop, name))
                required = name in new_req
                if response:
                    self.add(False, f"{subject} added")
                else:
                    self.add(required, f"{subject} added " + ("as required" if required else "(optional)"))

    def _variants(
        self,
        old: list[Any],
        new: list[Any],
        where: str,
        root: str,
        prop: str,
        direction: Direction,
        seen: frozenset[tuple[str, str]],
        combinator: str,
    ) -> None:
        """Pair variants by kind (in order), then compare the pairs; the rest are added or removed."""
        subject = _subject(where, root, prop)
        remaining = list(new)
        pairs: list[tuple[Any, Any]] = []
        removed: list[Any] = []
        for variant in old:
            kind = _kind(self._merged(self.old, variant))
            match = next((v for v in remaining if _kind(self._merged(self.new, v)) == kind), None)
            if match is None:
                removed.append(variant)
            else:
                remaining.remove(match)
                pairs.append((variant, match))
        response = direction == "response"
        for variant in removed:
            self.add(not response, f"{subject} {combinator} variant {_kind(self._merged(self.old, variant))} removed")
        for variant in remaining:
            self.add(response, f"{subject} {combinator} variant {_kind(self._merged(self.new, variant))} added")
        for o, n in pairs:
            self._schema(o, n, where, root, prop, direction, seen)


# -- generic comparison (the catch-all) ------------------------------------------


def normalize(node: Any, key: str = "") -> Any:
    """Drop what carries no meaning: key order, and order in set-like lists."""
    if isinstance(node, dict):
        return {str(k): normalize(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        items = [normalize(v) for v in node]
        if key == "parameters":
            return {f"{p.get('in')}:{p.get('name')}" if isinstance(p, dict) else _key(p): p for p in items}
        if key in _SETLIKE:
            return sorted(items, key=_key)
        return items
    return node


def _inline(doc: _Doc, node: Any, stack: tuple[str, ...] = ()) -> Any:
    """A copy of node with every local $ref replaced by its target (cycles keep their $ref)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in stack:
                return {"$ref": ref}
            return _inline(doc, doc.deref(node)[0], (*stack, ref))
        return {k: _inline(doc, v, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(doc, v, stack) for v in node]
    return node


def _leaf_diffs(old: Any, new: Any, path: str) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}[{k!r}]" if not k.isidentifier() else f"{path}.{k}"
            if k not in new:
                yield f"{sub}: removed"
            elif k not in old:
                yield f"{sub}: added"
            else:
                yield from _leaf_diffs(old[k], new[k], sub)
    elif old != new:
        yield f"{path}: changed {_fmt(old)} → {_fmt(new)}" if not isinstance(old, (dict, list)) else f"{path}: changed"


# -- overlay ---------------------------------------------------------------------


def _apply_each(document: Any, overlay: Any) -> tuple[Any, list[int], tuple[int, str] | None]:
    """Apply actions one by one; return the result, each action's match count and the first failure."""
    actions = apply_overlay.validate_overlay(overlay)
    doc = copy.deepcopy(document)
    counts: list[int] = []
    for i, action in enumerate(actions):
        counts.append(len(apply_overlay.matches(doc, action["target"])))
        try:
            doc = apply_overlay.apply(doc, {**overlay, "actions": [action]})
        except apply_overlay.OverlayError as exc:
            return None, counts, (i, str(exc).replace("action 0:", f"action {i}:"))
    return doc, counts, None


def overlay_changes(old: Any, new: Any, overlay: Any) -> tuple[list[Change], Any, Any]:
    """Check the overlay still applies to ``new``; return changes and both overlaid documents.

    Actions are numbered from 0, as apply_overlay numbers them.
    """
    old_doc, old_counts, old_failure = _apply_each(old, overlay)
    new_doc, new_counts, new_failure = _apply_each(new, overlay)
    changes: list[Change] = []
    actions = overlay["actions"]
    for i, count in enumerate(new_counts):
        if count == 0 and i < len(old_counts) and old_counts[i] > 0:
            desc = _words(str(actions[i].get("description", "")))
            changes.append(
                Change(
                    True,
                    "",
                    f"overlay action {i} ({desc}) target {actions[i]['target']} no longer matches anything",
                )
            )
    if new_failure and not old_failure:
        changes.append(Change(True, "", f"overlay no longer applies: {new_failure[1]}"))
    elif new_doc is not None and old_doc is not None:
        try:
            extract_spec.check_openapi(json.dumps(new_doc), "overlaid spec")
        except extract_spec.ExtractError as exc:
            changes.append(Change(True, "", f"overlay no longer gives a valid spec: {exc}"))
    return changes, old_doc, new_doc


def name_changes(old: Any, new: Any) -> list[Change]:
    """Generated names: operationIds and component schema names (compare overlaid documents)."""
    changes: list[Change] = []
    old_paths, new_paths = old.get("paths") or {}, new.get("paths") or {}
    for path, item in old_paths.items():
        for method in METHODS:
            o = (item or {}).get(method)
            n = (new_paths.get(path) or {}).get(method)
            if isinstance(o, dict) and isinstance(n, dict) and o.get("operationId") != n.get("operationId"):
                changes.append(
                    Change(
                        True,
                        f"{method.upper()} {path}",
                        f"operationId changed {_fmt(o.get('operationId'))} → {_fmt(n.get('operationId'))}"
                        " (the generated function is renamed)",
                    )
                )
    old_schemas = (old.get("components") or {}).get("schemas") or {}
    new_schemas = (new.get("components") or {}).get("schemas") or {}
    for name in old_schemas:
        if name not in new_schemas:
            changes.append(Change(True, f"schema '{name}'", "removed (the generated model disappears)"))
    for name in new_schemas:
        if name not in old_schemas:
            changes.append(Change(False, f"schema '{name}'", "added"))
    return changes


def hidden_by_overlay(old: Any, new: Any, old_overlaid: Any, new_overlaid: Any) -> list[Change]:
    """The vendor's changes that the overlaid spec, and so the generated client, does not follow.

    Overlays replace inline schemas with named copies, so a vendor change the copy
    does not follow would reach the generated client silently. A change is hidden
    when the vendor's report (old → new) has it and the overlaid specs' report
    (old overlaid → new overlaid) does not; it keeps the vendor line's verdict.
    Anything the vendor added or changed that the overlaid specs change alike
    (a new error status, say) is not reported twice, and nothing is reported for
    parts of the spec the vendor did not change.
    """
    overlaid = Counter(str(c) for c in _Differ(old_overlaid, new_overlaid).run())
    hidden: list[Change] = []
    for change in _Differ(old, new).run():
        if overlaid[str(change)] > 0:
            overlaid[str(change)] -= 1
        elif not change.cosmetic:
            message = f"the overlaid spec disagrees with the vendor's (fix the overlay): {change.message}"
            hidden.append(Change(change.breaking, change.location, message))
    return hidden


def compare(old: Any, new: Any, overlay: Any = None) -> list[Change]:
    """Every change from ``old`` to ``new``, breaking ones first; ``[]`` means semantically identical."""
    changes = _Differ(old, new).run()
    old_named, new_named = old, new
    if overlay is not None:
        found, old_named, new_named = overlay_changes(old, new, overlay)
        changes.extend(found)
    if old_named is not None and new_named is not None:
        changes.extend(name_changes(old_named, new_named))
        if overlay is not None:
            changes.extend(hidden_by_overlay(old, new, old_named, new_named))
    if not changes:
        old_flat, new_flat = normalize(_inline(_Doc(old), old)), normalize(_inline(_Doc(new), new))
        changes = [Change(False, "", line) for line in _leaf_diffs(old_flat, new_flat, "$")]
    return sorted(changes, key=lambda c: not c.breaking)


def report(changes: Iterable[Change]) -> str:
    """The report text: one line per change, or ``no changes``."""
    lines = [str(c) for c in changes]
    return "\n".join(lines) + "\n" if lines else "no changes\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the vendored OpenAPI document")
    parser.add_argument("new", type=Path, help="the candidate OpenAPI document")
    parser.add_argument("--overlay", type=Path, help="Overlay 1.0/1.1 document that must keep applying")
    args = parser.parse_args(argv)
    try:
        old, new = apply_overlay.load_yaml(args.old), apply_overlay.load_yaml(args.new)
        overlay = apply_overlay.load_yaml(args.overlay) if args.overlay else None
        changes = compare(old, new, overlay)
    except (apply_overlay.OverlayError, DiffError) as exc:
        print(f"spec_diff: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(report(changes))
    return 1 if any(c.breaking for c in changes) else 0


if __name__ == "__main__":
    sys.exit(main())
