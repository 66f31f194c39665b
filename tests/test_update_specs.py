"""scripts/update_specs.py and spec_diff.py: what a vendor spec change means for client users."""

from __future__ import annotations

import copy
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import spec_diff
import update_specs
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "update_specs.py"
SOURCES: dict[str, dict[str, str]] = json.loads((ROOT / "specs" / "sources.json").read_text())

BASE: dict[str, Any] = yaml.safe_load(
    """
openapi: 3.0.3
info: {title: Calls, version: '1'}
servers:
  - url: https://api.example.com
  - url: https://eu.api.example.com
security: []
paths:
  /calls/{id}:
    get:
      tags: [Calls]
      operationId: getCall
      summary: Get a call
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: leg, in: query, required: false, schema: {type: string, enum: [main, supervisor]}}
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Call'}
        '404': {description: Not found}
      security: [{ApiKey: []}]
    delete:
      tags: [Calls]
      operationId: deleteCall
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        '204': {description: Deleted}
      security: [{ApiKey: []}]
  /calls:
    post:
      tags: [Calls]
      operationId: createCall
      requestBody:
        required: false
        content:
          application/json:
            schema:
              type: object
              required: [to]
              properties:
                to: {type: string}
                channel: {type: string, enum: [voice, sms]}
      responses:
        '201':
          description: Created
          content:
            application/json:
              schema:
                type: object
                properties:
                  id: {type: string}
      security: [{ApiKey: []}]
components:
  schemas:
    Call:
      type: object
      required: [id, status, recording]
      properties:
        id: {type: string}
        status: {type: string, enum: [queued, done]}
        note: {type: string, description: Free text}
        recording:
          type: object
          required: [url]
          properties:
            url: {type: string}
            expiresAt: {type: string, format: date-time}
        segments:
          type: array
          items:
            type: object
            properties:
              start: {type: number}
              speaker:
                anyOf:
                  - {type: string}
                  - {type: integer}
  securitySchemes:
    ApiKey: {type: apiKey, in: header, name: X-API-Key}
"""
)

GET = ("paths", "/calls/{id}", "get")
POST = ("paths", "/calls", "post")
CALL = ("components", "schemas", "Call", "properties")
BODY = (*POST, "requestBody", "content", "application/json", "schema")
SCHEME = ("components", "securitySchemes", "ApiKey")

Mutation = Callable[[dict[str, Any]], None]


def _parent(doc: Any, keys: tuple[Any, ...]) -> Any:
    for key in keys[:-1]:
        doc = doc[key]
    return doc


def set_(*keys: Any, to: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        _parent(doc, keys)[keys[-1]] = copy.deepcopy(to)  # never shared between the old and new spec

    return mutate


def delete(*keys: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        del _parent(doc, keys)[keys[-1]]

    return mutate


def append(*keys: Any, item: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        _parent(doc, keys)[keys[-1]].append(item)

    return mutate


def rename(*keys: Any, to: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        parent = _parent(doc, keys)
        parent[to] = parent.pop(keys[-1])

    return mutate


def overlay(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"overlay": "1.0.0", "info": {"title": "t", "version": "1"}, "actions": list(actions)}


@dataclass(frozen=True)
class Case:
    id: str
    mutations: tuple[Mutation, ...]
    expected: tuple[str, ...]
    overlay: dict[str, Any] | None = field(default=None)
    both: tuple[Mutation, ...] = ()  # applied to the old and the new spec first
    exit: int = -1  # spec_diff.py's exit status: 1 if anything is breaking, else 0


NAME_404 = overlay(
    {"target": "$.paths['/calls/{id}'].get.responses['404']", "description": "Name the 404 body.", "update": {}}
)
LOGO = overlay({"target": "$.info['x-logo']", "update": {"altText": "Calls"}})
CREATED = (*POST, "responses", "201", "content", "application/json")
NAME_201 = overlay(
    {"target": "$.paths['/calls'].post.responses['201'].content['application/json'].schema", "remove": True},
    {"target": "$.paths['/calls'].post.responses['201'].content['application/json']",
     "update": {"schema": {"$ref": "#/components/schemas/Created"}}},
    {"target": "$.components.schemas",
     "update": {"Created": {"type": "object", "properties": {"id": {"type": "string"}}}}},
)  # fmt: skip
V2 = overlay({"target": "$.paths['/v2/calls']", "description": "Tag the v2 path.", "update": {"tagged": True}})
# As Siro's overlay does: strip every inline JSON body schema, then point the known statuses at named ones.
NAMED_BODIES = overlay(
    {"target": "$.paths['/calls/{id}'].get.responses.*.content['application/json'].schema", "remove": True},
    {"target": "$.paths['/calls/{id}'].get.responses['200'].content['application/json']",
     "update": {"schema": {"$ref": "#/components/schemas/Call"}}},
)  # fmt: skip
ERROR_BODY = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
RATE_LIMITED = {"description": "Too many requests", "content": {"application/json": {"schema": ERROR_BODY}}}
COPY_404 = {
    "overlay": "1.1.0",
    "info": {"title": "t", "version": "1", "description": "An Overlay 1.1 document."},
    "actions": [{"target": "$.paths['/calls/{id}'].delete.responses['204']",
                 "copy": "$.paths['/calls/{id}'].get.responses['404']",
                 "description": "Deleting documents the same 404."}],
}  # fmt: skip
TEMPLATED_SERVER = {"url": "https://{region}.example.com/v1", "variables": {"region": {"default": "us"}}}

# fmt: off
CASES = [
    # -- operations and paths
    Case("operation-removed-is-breaking", (delete("paths", "/calls/{id}", "delete"),),
         ("BREAKING: DELETE /calls/{id}: operation removed",), exit=1),
    Case("path-renamed-is-removed-plus-added", (rename("paths", "/calls", to="/v2/calls"),),
         ("BREAKING: /calls: path removed (POST)", "NON-BREAKING: /v2/calls: path added (POST)"), exit=1),
    Case("new-operation-is-non-breaking",
         (set_("paths", "/calls/{id}", "put", to={"responses": {"200": {"description": "OK"}}}),),
         ("NON-BREAKING: PUT /calls/{id}: operation added",), exit=0),
    Case("first-tag-changed-is-breaking-generated-module-moves", (set_(*GET, "tags", to=["Recordings"]),),
         ("BREAKING: GET /calls/{id}: first tag changed ['Calls'] → ['Recordings'] "
          "(the generated module is named after it)",), exit=1),
    Case("operation-id-changed-is-breaking-generated-function-renamed", (set_(*GET, "operationId", to="fetchCall"),),
         ("BREAKING: GET /calls/{id}: operationId changed 'getCall' → 'fetchCall' (the generated function is renamed)",), exit=1),
    Case("summary-and-description-changes-are-non-breaking",
         (set_(*GET, "summary", to="Fetch a call"), set_(*CALL, "note", "description", to="Anything")),
         ("NON-BREAKING: GET /calls/{id}: summary changed",
          "NON-BREAKING: GET /calls/{id}: response 200 property 'note' description changed"), exit=0),
    Case("example-change-is-non-breaking", (set_(*CALL, "id", "example", to="c_1"),),
         ("NON-BREAKING: GET /calls/{id}: response 200 property 'id' example changed",), exit=0),
    # -- parameters
    Case("required-parameter-added-is-breaking",
         (append(*GET, "parameters", item={"name": "X-Trace", "in": "header", "required": True,
                                           "schema": {"type": "string"}}),),
         ("BREAKING: GET /calls/{id}: header parameter 'X-Trace' added as required",), exit=1),
    Case("optional-parameter-added-is-non-breaking",
         (append(*GET, "parameters", item={"name": "fields", "in": "query", "schema": {"type": "string"}}),),
         ("NON-BREAKING: GET /calls/{id}: query parameter 'fields' added (optional)",), exit=0),
    Case("parameter-made-required-is-breaking", (set_(*GET, "parameters", 1, "required", to=True),),
         ("BREAKING: GET /calls/{id}: query parameter 'leg' made required",), exit=1),
    Case("parameter-removed-is-breaking", (delete(*GET, "parameters", 1),),
         ("BREAKING: GET /calls/{id}: query parameter 'leg' removed (the generated function loses the argument)",), exit=1),
    Case("parameter-type-changed-is-breaking", (set_(*GET, "parameters", 0, "schema", "type", to="integer"),),
         ("BREAKING: GET /calls/{id}: path parameter 'id' type changed string → integer",), exit=1),
    Case("parameter-enum-narrowed-is-breaking", (set_(*GET, "parameters", 1, "schema", "enum", to=["main"]),),
         ("BREAKING: GET /calls/{id}: query parameter 'leg' enum narrowed: value 'supervisor' removed",), exit=1),
    Case("parameter-enum-widened-is-non-breaking",
         (append(*GET, "parameters", 1, "schema", "enum", item="both"),),
         ("NON-BREAKING: GET /calls/{id}: query parameter 'leg' enum widened: value 'both' added",), exit=0),
    # -- request bodies
    Case("request-body-made-required-is-breaking", (set_(*POST, "requestBody", "required", to=True),),
         ("BREAKING: POST /calls: request body made required",), exit=1),
    Case("request-body-added-as-required-is-breaking",
         (set_("paths", "/calls/{id}", "delete", "requestBody",
               to={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}),),
         ("BREAKING: DELETE /calls/{id}: request body added as required",), exit=1),
    Case("optional-request-body-added-is-non-breaking",
         (set_("paths", "/calls/{id}", "delete", "requestBody",
               to={"content": {"application/json": {"schema": {"type": "object"}}}}),),
         ("NON-BREAKING: DELETE /calls/{id}: request body added (optional)",), exit=0),
    Case("request-property-added-as-required-is-breaking",
         (set_(*BODY, "properties", "from", to={"type": "string"}), append(*BODY, "required", item="from")),
         ("BREAKING: POST /calls: request body property 'from' added as required",), exit=1),
    Case("request-property-enum-narrowed-is-breaking",
         (set_(*BODY, "properties", "channel", "enum", to=["voice"]),),
         ("BREAKING: POST /calls: request body property 'channel' enum narrowed: value 'sms' removed",), exit=1),
    # -- responses (through $ref, nested objects, arrays, anyOf)
    Case("nested-response-property-removed-is-breaking", (delete(*CALL, "recording", "properties", "expiresAt"),),
         ("BREAKING: GET /calls/{id}: response 200 property 'recording.expiresAt' removed",), exit=1),
    Case("response-property-renamed-is-removed-plus-added", (rename(*CALL, "note", to="notes"),),
         ("BREAKING: GET /calls/{id}: response 200 property 'note' removed",
          "NON-BREAKING: GET /calls/{id}: response 200 property 'notes' added"), exit=1),
    Case("response-property-type-changed-in-array-item-is-breaking",
         (set_(*CALL, "segments", "items", "properties", "start", "type", to="string"),),
         ("BREAKING: GET /calls/{id}: response 200 property 'segments[].start' type changed number → string",), exit=1),
    Case("response-property-format-changed-is-breaking",
         (delete(*CALL, "recording", "properties", "expiresAt", "format"),),
         ("BREAKING: GET /calls/{id}: response 200 property 'recording.expiresAt' type changed "
          "string(date-time) → string",), exit=1),
    Case("response-property-made-optional-is-breaking",
         (set_("components", "schemas", "Call", "required", to=["id", "status"]),),
         ("BREAKING: GET /calls/{id}: response 200 property 'recording' made optional (was required)",), exit=1),
    Case("response-property-made-nullable-is-breaking", (set_(*CALL, "id", "nullable", to=True),),
         ("BREAKING: GET /calls/{id}: response 200 property 'id' may now be null",), exit=1),
    Case("response-enum-value-added-is-breaking", (append(*CALL, "status", "enum", item="failed"),),
         ("BREAKING: GET /calls/{id}: response 200 property 'status' enum value 'failed' added "
          "(generated models reject unknown values)",), exit=1),
    Case("response-enum-value-removed-is-breaking", (set_(*CALL, "status", "enum", to=["done"]),),
         ("BREAKING: GET /calls/{id}: response 200 property 'status' enum value 'queued' removed",), exit=1),
    Case("response-anyof-variant-added-is-breaking",
         (append(*CALL, "segments", "items", "properties", "speaker", "anyOf", item={"type": "boolean"}),),
         ("BREAKING: GET /calls/{id}: response 200 property 'segments[].speaker' anyOf variant boolean added",), exit=1),
    Case("new-optional-response-property-is-non-breaking", (set_(*CALL, "duration", to={"type": "number"}),),
         ("NON-BREAKING: GET /calls/{id}: response 200 property 'duration' added",), exit=0),
    Case("success-status-removed-is-breaking", (delete(*GET, "responses", "200"),),
         ("BREAKING: GET /calls/{id}: success response 200 removed",), exit=1),
    Case("error-status-added-is-non-breaking", (set_(*GET, "responses", "429", to={"description": "Slow down"}),),
         ("NON-BREAKING: GET /calls/{id}: error response 429 added",), exit=0),
    Case("error-status-removed-is-non-breaking", (delete(*GET, "responses", "404"),),
         ("NON-BREAKING: GET /calls/{id}: error response 404 removed",), exit=0),
    Case("ref-inlined-is-no-change",
         (set_(*GET, "responses", "200", "content", "application/json", "schema",
               to=copy.deepcopy(BASE["components"]["schemas"]["Call"])),),
         (), exit=0),
    Case("unclassified-difference-is-still-reported-non-breaking", (set_(*GET, "x-internal", to=True),),
         ("NON-BREAKING: $.paths['/calls/{id}'].get['x-internal']: added",), exit=0),
    # -- security and servers
    Case("security-scheme-header-name-changed-is-breaking", (set_(*SCHEME, "name", to="X-Api-Token"),),
         ("BREAKING: security scheme 'ApiKey': header name changed 'X-API-Key' → 'X-Api-Token'",), exit=1),
    Case("security-scheme-header-name-case-only-is-non-breaking", (set_(*SCHEME, "name", to="x-api-key"),),
         ("NON-BREAKING: security scheme 'ApiKey': header name changed 'X-API-Key' → 'x-api-key' "
          "(case only; HTTP header names are case-insensitive)",), exit=0),
    Case("security-scheme-location-changed-is-breaking", (set_(*SCHEME, "in", to="query"),),
         ("BREAKING: security scheme 'ApiKey': in changed 'header' → 'query'",), exit=1),
    Case("operation-security-requirement-changed-is-breaking",
         (set_("components", "securitySchemes", "Bearer", to={"type": "http", "scheme": "bearer"}),
          set_(*GET, "security", to=[{"Bearer": []}])),
         ("BREAKING: GET /calls/{id}: security requirement changed ApiKey → Bearer",
          "NON-BREAKING: security scheme 'Bearer': added"), exit=1),
    Case("server-url-removed-is-non-breaking-but-reported", (delete("servers", 1),),
         ("NON-BREAKING: servers: server URL https://eu.api.example.com removed",), exit=0),
    Case("default-server-url-changed-is-said-plainly", (set_("servers", 0, "url", to="https://api2.example.com"),),
         ("NON-BREAKING: servers: default base URL changes for users: https://api.example.com → "
          "https://api2.example.com",), exit=0),
    Case("first-server-removed-the-next-becomes-the-default", (delete("servers", 0),),
         ("NON-BREAKING: servers: default base URL changes for users: https://api.example.com → "
          "https://eu.api.example.com",), exit=0),
    Case("new-first-server-becomes-the-default",
         (set_("servers", to=[{"url": "https://v2.example.com"}, *copy.deepcopy(BASE["servers"])]),),
         ("NON-BREAKING: servers: default base URL changes for users: https://api.example.com → "
          "https://v2.example.com",), exit=0),
    Case("servers-removed-leave-no-default-base-url", (delete("servers"),),
         ("NON-BREAKING: servers: default base URL changes for users: https://api.example.com → "
          "none (the spec lists no servers)",
          "NON-BREAKING: servers: server URL https://eu.api.example.com removed"), exit=0),
    Case("server-variable-default-changed-changes-the-default-base-url",
         (set_("servers", 0, "variables", "region", "default", to="eu"),),
         ("NON-BREAKING: servers: default base URL changes for users: https://us.example.com/v1 → "
          "https://eu.example.com/v1",),
         both=(set_("servers", 0, to=TEMPLATED_SERVER),), exit=0),
    Case("other-server-described-differently-is-no-base-url-change",
         (set_("servers", 1, "description", to="Europe"),),
         ("NON-BREAKING: $.servers: changed",), exit=0),
    # -- the overlay must keep applying
    Case("overlay-target-no-longer-matching-is-breaking", (delete(*GET, "responses", "404"),),
         ("BREAKING: overlay action 0 (Name the 404 body.) target $.paths['/calls/{id}'].get.responses['404'] "
          "no longer matches anything",
          "NON-BREAKING: GET /calls/{id}: error response 404 removed"),
         overlay=NAME_404, exit=1),
    Case("vendor-change-the-overlay-copy-hides-is-reported-against-the-overlay",
         (delete(*CREATED, "schema", "properties", "id"),),
         ("BREAKING: POST /calls: response 201 property 'id' removed",
          "BREAKING: POST /calls: the overlaid spec disagrees with the vendor's (fix the overlay): "
          "response 201 property 'id' removed"),
         overlay=NAME_201, exit=1),
    Case("vendor-addition-the-overlay-copy-lacks-is-non-breaking",
         (set_(*CREATED, "schema", "properties", "at", to={"type": "string"}),),
         ("NON-BREAKING: POST /calls: response 201 property 'at' added",
          "NON-BREAKING: POST /calls: the overlaid spec disagrees with the vendor's (fix the overlay): "
          "response 201 property 'at' added"),
         overlay=NAME_201, exit=0),
    Case("overlay-that-no-longer-applies-is-breaking",
         (set_("info", "x-logo", to="https://example.com/logo.png"),),
         ("BREAKING: overlay no longer applies: action 0: target \"$.info['x-logo']\" selects a str; "
          "update needs an object or array",),
         overlay=LOGO, both=(set_("info", "x-logo", to={"url": "https://example.com/logo.png"}),), exit=1),
    Case("new-error-status-with-a-json-body-is-non-breaking-whatever-the-overlay-does-to-its-body",
         (set_(*GET, "responses", "429", to=RATE_LIMITED),),
         ("NON-BREAKING: GET /calls/{id}: error response 429 added",), overlay=NAMED_BODIES, exit=0),
    Case("error-body-changed-under-a-stripped-schema-is-reported-once",
         (set_(*GET, "responses", "404", to={**RATE_LIMITED, "description": "Not found"}),),
         ("NON-BREAKING: GET /calls/{id}: response 404 media type application/json added",),
         overlay=NAMED_BODIES, exit=0),
    Case("overlay-1-1-copy-source-gone-is-breaking", (delete(*GET, "responses", "404"),),
         ("BREAKING: overlay no longer applies: action 0: copy source \"$.paths['/calls/{id}'].get.responses['404']\" "
          "selects nothing; it must select exactly one node",
          "NON-BREAKING: GET /calls/{id}: error response 404 removed"),
         overlay=COPY_404, exit=1),
    Case("overlay-1-1-copy-follows-the-vendor-change", (set_(*GET, "responses", "404", "description", to="Gone"),),
         ("NON-BREAKING: GET /calls/{id}: response 404 description changed",),
         overlay=COPY_404, exit=0),
    Case("overlay-giving-an-invalid-spec-is-breaking", (rename("paths", "/calls", to="/v2/calls"),),
         ("BREAKING: /calls: path removed (POST)",
          "BREAKING: overlay no longer gives a valid spec: overlaid spec: invalid OpenAPI 3.x: 'tagged' ...",
          "NON-BREAKING: /v2/calls: path added (POST)"),
         overlay=V2, exit=1),
]
# fmt: on


def _matches(line: str, expected: str) -> bool:
    return line.startswith(expected[:-3]) if expected.endswith("...") else line == expected


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_change_is_classified(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = copy.deepcopy(BASE), copy.deepcopy(BASE)
    for mutate in case.both:
        mutate(old)
        mutate(new)
    for mutate in case.mutations:
        mutate(new)
    lines = [str(c) for c in spec_diff.compare(old, new, case.overlay)]
    assert len(lines) == len(case.expected), lines
    assert all(_matches(line, want) for line, want in zip(lines, case.expected, strict=True)), lines
    assert spec_diff.report(spec_diff.compare(old, new, case.overlay)) == (
        "\n".join(lines) + "\n" if lines else "no changes\n"
    )
    # The same documents through the command line give the row's exit status.
    assert case.exit in (0, 1), f"{case.id}: give the row its exit status"
    args = []
    for name, doc in (("old", old), ("new", new), ("overlay", case.overlay)):
        if doc is not None:
            (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
            args += [f"--{name}"] if name == "overlay" else []
            args.append(str(tmp_path / f"{name}.yaml"))
    assert spec_diff.main(args) == case.exit
    assert capsys.readouterr().out == spec_diff.report(spec_diff.compare(old, new, case.overlay))


def test_unchanged_base_spec_has_no_changes() -> None:
    assert spec_diff.compare(BASE, copy.deepcopy(BASE)) == []


def test_dangling_ref_cannot_be_compared() -> None:
    new = copy.deepcopy(BASE)
    set_(*GET, "responses", "200", "content", "application/json", "schema", to={"$ref": "#/components/schemas/Gone"})(
        new
    )
    with pytest.raises(spec_diff.DiffError, match="dangling \\$ref '#/components/schemas/Gone'"):
        spec_diff.compare(BASE, new)


def test_spec_diff_compares_two_files_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = copy.deepcopy(BASE)
    delete(*GET, "responses", "200")(new)
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    assert spec_diff.main([str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")]) == 1
    assert capsys.readouterr().out == "BREAKING: GET /calls/{id}: success response 200 removed\n"
    assert spec_diff.main([str(tmp_path / "old.yaml"), str(tmp_path / "old.yaml")]) == 0
    assert capsys.readouterr().out == "no changes\n"


# -- the script ---------------------------------------------------------------


def run(*args: str | Path, script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, script, *map(str, args)], capture_output=True, text=True, check=False)


def vendored(vendor: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "specs" / f"{vendor}.openapi.yaml").read_text())
    return doc


def page_with(spec: str) -> str:
    return f"# A vendor page\n\n## OpenAPI\n\n````yaml\n{spec}````\n"


def _reversed_lists(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _reversed_lists(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_reversed_lists(v) for v in reversed(node)] if all(isinstance(v, str) for v in node) else node
    return node


# These tests only use what sources.json records and the vendored files as they
# are, so they keep passing after `make update-specs` applies a vendor's change.


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_real_page_unchanged_reports_no_changes(vendor: str) -> None:
    proc = run(vendor, "--page", ROOT / SOURCES[vendor]["page"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "no changes\n", "")


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_reformatted_but_equal_spec_is_no_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vendor: str
) -> None:
    # Flow style, sorted keys, and every list of names (required, enum, tags) reversed.
    text = yaml.safe_dump(_reversed_lists(vendored(vendor)), sort_keys=True, default_flow_style=True, width=60)
    assert text != (ROOT / SOURCES[vendor]["spec"]).read_text()
    page = tmp_path / "page.md"
    page.write_text(page_with(text))
    assert update_specs.main([vendor, "--page", str(page)]) == 0
    assert capsys.readouterr().out == "no changes\n"


def test_page_that_fails_to_parse_exits_2_with_one_line(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    page.write_text("```yaml\nopenapi: [unclosed\n```\n")
    proc = run("feather", "--page", page)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert str(page) in proc.stderr
    assert "YAML does not parse" in proc.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of specs/, scripts/, pyproject.toml (at version 0.1.0) and CHANGELOG.md: --apply never touches ours."""
    copy_root = tmp_path / "project"
    for folder in ("specs", "scripts"):
        shutil.copytree(ROOT / folder, copy_root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    (copy_root / "pyproject.toml").write_text(update_specs.set_project_version(pyproject, "0.1.0"))
    shutil.copy2(ROOT / "CHANGELOG.md", copy_root / "CHANGELOG.md")
    return copy_root


def _moved_path_page(tmp_path: Path, vendor: str) -> tuple[Path, str]:
    """A page whose spec serves the recorded operation under a new path: a breaking change."""
    doc, path = vendored(vendor), SOURCES[vendor]["path"]
    doc["paths"][f"/v9{path}"] = doc["paths"].pop(path)
    spec = yaml.safe_dump(doc, sort_keys=False)
    page = tmp_path / "new-page.md"
    page.write_text(page_with(spec))
    return page, spec


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_moved_path_is_breaking_and_the_overlay_actions_it_strands_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vendor: str
) -> None:
    page, _ = _moved_path_page(tmp_path, vendor)
    path, method = SOURCES[vendor]["path"], SOURCES[vendor]["method"]
    assert update_specs.main([vendor, "--page", str(page)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"BREAKING: {path}: path removed ({method})"
    # Action 0 names the operation (operationId) in both overlays.
    assert any(line.startswith("BREAKING: overlay action 0 (") and "no longer matches anything" in line for line in out)
    assert out[-1] == f"NON-BREAKING: /v9{path}: path added ({method})"


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_new_error_status_with_a_json_body_is_non_breaking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vendor: str
) -> None:
    # Both overlays strip every inline JSON body schema of the operation, the new one's too:
    # that is no change to report, and no reason to fail the run.
    doc, path, method = vendored(vendor), SOURCES[vendor]["path"], SOURCES[vendor]["method"]
    responses = doc["paths"][path][method.lower()]["responses"]
    # A status the vendored spec lacks today (429 until a vendor adds one, as make update-specs may).
    status = next(code for code in ("429", "409", "410", "418", "451") if code not in responses)
    responses[status] = RATE_LIMITED
    page = tmp_path / "page.md"
    page.write_text(page_with(yaml.safe_dump(doc, sort_keys=False)))
    assert update_specs.main([vendor, "--page", str(page)]) == 0
    assert capsys.readouterr().out == f"NON-BREAKING: {method} {path}: error response {status} added\n"


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_new_default_server_is_reported_as_a_base_url_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vendor: str
) -> None:
    doc = vendored(vendor)
    old_url = doc["servers"][0]["url"]
    doc["servers"][0]["url"] = "https://api.example.net/v2"
    page = tmp_path / "page.md"
    page.write_text(page_with(yaml.safe_dump(doc, sort_keys=False)))
    assert update_specs.main([vendor, "--page", str(page)]) == 0
    assert capsys.readouterr().out == (
        f"NON-BREAKING: servers: default base URL changes for users: {old_url} → https://api.example.net/v2\n"
    )


def test_apply_writes_spec_byte_for_byte_and_page_copy_even_when_breaking(project: Path, tmp_path: Path) -> None:
    page, spec = _moved_path_page(tmp_path, "feather")
    proc = run("feather", "--page", page, "--apply", script=project / "scripts" / "update_specs.py")
    assert proc.returncode == 1
    assert proc.stdout.startswith("BREAKING: ")
    assert proc.stderr == (
        "update_specs: wrote specs/feather.openapi.yaml and specs/pages/feather.md\n"
        "update_specs: version 0.1.0 → 0.2.0 in pyproject.toml; CHANGELOG.md entry [0.2.0]\n"
    )
    assert (project / "specs" / "feather.openapi.yaml").read_bytes() == spec.encode()
    assert (project / "specs" / "pages" / "feather.md").read_bytes() == page.read_bytes()
    assert (project / "specs" / "siro.openapi.yaml").read_bytes() == (ROOT / "specs" / "siro.openapi.yaml").read_bytes()


def test_without_apply_nothing_is_written(project: Path, tmp_path: Path) -> None:
    page, _ = _moved_path_page(tmp_path, "feather")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    proc = run("feather", "--page", page, script=project / "scripts" / "update_specs.py")
    assert proc.returncode == 1
    assert proc.stdout.startswith("BREAKING: ")
    assert proc.stderr == ""
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and "__pycache__" not in p.parts} == before


# -- fetching -----------------------------------------------------------------


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_index_gives_one_line_error_and_exit_2() -> None:
    url = f"http://127.0.0.1:{_unused_port()}/llms.txt"
    proc = run("feather", "--index-url", url)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"update_specs: feather: {url}: cannot fetch (ConnectError")


@pytest.fixture
def docs_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, bytes]]]:
    """A loopback docs site: a path -> body mapping served over HTTP; anything else is 404."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    routes: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_index_entry_with_the_recorded_title_is_fetched(
    docs_site: tuple[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, routes = docs_site
    routes["/llms.txt"] = (
        b"# Feather\n\n## Docs\n\n"
        b"- [Get a call](https://127.0.0.1:1/never.md): not this one\n"
        b"- [" + SOURCES["feather"]["title"].encode() + b"](/api/recording-url.md): the one\n"
    )
    routes["/api/recording-url.md"] = (ROOT / SOURCES["feather"]["page"]).read_bytes()
    assert update_specs.main(["feather", "--index-url", f"{base}/llms.txt"]) == 0
    assert capsys.readouterr() == ("no changes\n", "")


@pytest.mark.parametrize(
    ("llms_txt", "reason"),
    [
        (b"- [Something else](/x.md): nope\n", f"no entry titled {SOURCES['feather']['title']!r}"),
        (b"- [" + SOURCES["feather"]["title"].encode() + b"](/gone.md): moved\n", "/gone.md: HTTP 404"),
    ],
    ids=["title-missing-from-index", "page-link-is-404"],
)
def test_index_without_a_usable_entry_exits_2(
    docs_site: tuple[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str], llms_txt: bytes, reason: str
) -> None:
    base, routes = docs_site
    routes["/llms.txt"] = llms_txt
    assert update_specs.main(["feather", "--index-url", f"{base}/llms.txt"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert reason in err


def test_page_url_is_fetched_directly(
    docs_site: tuple[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, routes = docs_site
    routes["/siro.md"] = (ROOT / SOURCES["siro"]["page"]).read_bytes()
    assert update_specs.main(["siro", "--page", f"{base}/siro.md"]) == 0
    assert capsys.readouterr().out == "no changes\n"


def test_help_names_the_options() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for option in ("--page", "--apply", "--index-url", "{feather,siro}"):
        assert option in proc.stdout
