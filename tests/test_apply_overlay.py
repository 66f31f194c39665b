"""scripts/apply_overlay.py implements OpenAPI Overlay 1.0 and 1.1 with RFC 9535 JSONPath targets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import apply_overlay
import pytest
import yaml
from apply_overlay import OverlayError, apply

ROOT = Path(__file__).resolve().parent.parent


def overlay(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"overlay": "1.0.0", "info": {"title": "t", "version": "1"}, "actions": list(actions)}


DOC: dict[str, Any] = {
    "info": {"title": "API", "version": "1", "x-keep": True},
    "tags": [{"name": "a"}],
    "paths": {
        "/a": {"get": {"summary": "A", "tags": ["x"]}, "post": {"summary": "A2"}},
        "/b": {"get": {"summary": "B", "x-internal": True}},
    },
}


def test_update_deep_merges_objects_and_keeps_other_keys() -> None:
    out = apply(DOC, overlay({"target": "$.info", "update": {"title": "New", "contact": {"name": "n"}}}))
    assert out["info"] == {"title": "New", "version": "1", "x-keep": True, "contact": {"name": "n"}}
    assert DOC["info"]["title"] == "API", "the input document must not be mutated"


def test_update_on_array_target_appends() -> None:
    out = apply(DOC, overlay({"target": "$.tags", "update": {"name": "b"}}))
    assert out["tags"] == [{"name": "a"}, {"name": "b"}]
    out = apply(DOC, overlay({"target": "$.tags", "update": [{"name": "c"}, {"name": "d"}]}))
    assert [t["name"] for t in out["tags"]] == ["a", "c", "d"]


def test_update_merging_into_nested_array_appends() -> None:
    out = apply(DOC, overlay({"target": "$.paths['/a'].get", "update": {"tags": ["y"]}}))
    assert out["paths"]["/a"]["get"]["tags"] == ["x", "y"]


def test_remove_true_removes_every_selected_node() -> None:
    out = apply(DOC, overlay({"target": "$.paths.*.get", "remove": True}))
    assert out["paths"] == {"/a": {"post": {"summary": "A2"}}, "/b": {}}


def test_remove_false_does_not_remove_and_applies_update() -> None:
    out = apply(DOC, overlay({"target": "$.info", "remove": False, "update": {"title": "T"}}))
    assert out["info"]["title"] == "T"
    out = apply(DOC, overlay({"target": "$.paths['/b']", "remove": False}))
    assert out == DOC


def test_remove_of_array_items_by_filter_removes_the_right_ones() -> None:
    doc = {"params": [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]}
    out = apply(doc, overlay({"target": "$.params[?@.n > 1 && @.n < 4]", "remove": True}))
    assert out == {"params": [{"n": 1}, {"n": 4}]}


def test_filter_selects_only_matching_operations() -> None:
    out = apply(DOC, overlay({"target": "$.paths.*[?@['x-internal'] == true]", "update": {"deprecated": True}}))
    assert out["paths"]["/b"]["get"]["deprecated"] is True
    assert "deprecated" not in out["paths"]["/a"]["get"]


def test_target_matching_nothing_is_a_no_op() -> None:
    assert apply(DOC, overlay({"target": "$.paths['/nope']", "update": {"x": 1}})) == DOC
    assert apply(DOC, overlay({"target": "$.nothing[*]", "remove": True})) == DOC


def test_actions_apply_in_order() -> None:
    out = apply(
        DOC,
        overlay(
            {"target": "$.paths['/a'].get", "remove": True},
            {"target": "$.paths['/a']", "update": {"get": {"summary": "recreated"}}},
        ),
    )
    assert out["paths"]["/a"]["get"] == {"summary": "recreated"}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"info": {"title": "t", "version": "1"}, "actions": [{"target": "$"}]}, "missing required field(s): overlay"),
        ({"overlay": "1.0.0", "actions": [{"target": "$"}]}, "missing required field(s): info"),
        ({"overlay": "1.0.0", "info": {"title": "t", "version": "1"}}, "missing required field(s): actions"),
        (overlay({"target": "paths.x", "update": {}}), "is not an RFC 9535 JSONPath"),
        (overlay({"target": "$.a[", "update": {}}), "is not an RFC 9535 JSONPath"),
        (overlay({"update": {}}), "'target' is required"),
        (overlay({"target": "$", "remove": "yes"}), "'remove' must be a boolean"),
        ({**overlay({"target": "$"}), "overlay": "2.0.0"}, "unsupported overlay version"),
        ({**overlay(), "actions": []}, "non-empty list"),
        (overlay({"target": "$.info.title", "update": {"a": 1}}), "update needs an object or array"),
    ],
    ids=[
        "no-overlay", "no-info", "no-actions", "not-jsonpath", "bad-jsonpath", "no-target",
        "remove-not-bool", "bad-version", "empty-actions", "scalar-target",
    ],
)  # fmt: skip
def test_malformed_overlay_is_refused_with_clear_error(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(OverlayError, match=None) as info:
        apply(DOC, doc)
    assert message in str(info.value)


def test_rfc9535_strictness_rejects_non_standard_syntax() -> None:
    # python-jsonpath's non-standard extensions (e.g. keys selector `~`) are refused in strict mode.
    with pytest.raises(OverlayError, match="RFC 9535"):
        apply(DOC, overlay({"target": "$.paths.*~", "update": {}}))


def test_cli_prints_yaml_and_writes_file(tmp_path: Path) -> None:
    spec, ov, out = tmp_path / "s.yaml", tmp_path / "o.yaml", tmp_path / "out.yaml"
    spec.write_text(yaml.safe_dump(DOC))
    ov.write_text(yaml.safe_dump(overlay({"target": "$.info", "update": {"title": "CLI"}})))
    script = ROOT / "scripts" / "apply_overlay.py"
    proc = subprocess.run([sys.executable, script, spec, ov], capture_output=True, text=True, check=True)
    assert yaml.safe_load(proc.stdout)["info"]["title"] == "CLI"
    subprocess.run([sys.executable, script, spec, ov, "-o", out], check=True)
    assert yaml.safe_load(out.read_text())["info"]["title"] == "CLI"
    ov.write_text(yaml.safe_dump({"overlay": "1.0.0"}))
    proc = subprocess.run([sys.executable, script, spec, ov], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "missing required field(s): info, actions" in proc.stderr


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_every_vendor_overlay_action_has_a_description_and_matches(vendor: str) -> None:
    spec = apply_overlay.load_yaml(ROOT / "specs" / f"{vendor}.openapi.yaml")
    ov = apply_overlay.load_yaml(ROOT / "specs" / f"{vendor}.overlay.yaml")
    for action in apply_overlay.validate_overlay(ov):
        assert action.get("description", "").strip(), action["target"]
        assert apply_overlay.matches(spec, action["target"]), f"{action['target']} matches nothing"


# -- Overlay 1.1 (https://spec.openapis.org/overlay/v1.1.0.html) -----------------------------
# The examples below are the specification's own, section by section: its source description,
# its overlay and, where it gives one, its result description.


def overlay_1_1(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"overlay": "1.1.0", "info": {"title": "t", "version": "1"}, "actions": list(actions)}


SPEC_SOURCE = yaml.safe_load(
    """
openapi: 3.1.0
info:
  title: Example API
  version: 1.0.0
paths:
  /items:
    get:
      responses:
        200:
          description: OK
  /some-items:
    delete:
      responses:
        200:
          description: OK
"""
)

SPEC_COPY_EXAMPLES = [
    (
        # Simple Copy
        """
overlay: 1.1.0
info:
  title: Copy contents of an existing path to a new location
  version: 1.0.0
actions:
  - target: '$.paths["/some-items"]'
    copy: '$.paths["/items"]'
    description: 'copies recursively all elements from the "items" path item to the new "some-items" path item without ensuring the node exists before the copy'
""",
        """
openapi: 3.1.0
info:
  title: Example API
  version: 1.0.0
paths:
  /items:
    get:
      responses:
        200:
          description: OK
  /some-items:
    get:
      responses:
        200:
          description: OK
    delete:
      responses:
        200:
          description: OK
""",
    ),
    (
        # Ensure the Target Exists and Copy
        """
overlay: 1.1.0
info:
  title: Create a path and copy the contents of an existing path to the new path
  version: 1.0.0
actions:
  - target: '$.paths'
    update: { "/other-items": {} }
  - target: '$.paths["/other-items"]'
    copy: '$.paths["/items"]'
    description: 'copies recursively all elements from the "items" path item to the new "other-items" path item while ensuring the node exists before the copy'
""",
        """
openapi: 3.1.0
info:
  title: Example API
  version: 1.0.0
paths:
  /items:
    get:
      responses:
        200:
          description: OK
  /other-items:
    get:
      responses:
        200:
          description: OK
  /some-items:
    delete:
      responses:
        200:
          description: OK
""",
    ),
    (
        # Move Example: update to create the target, copy, remove the source
        """
overlay: 1.1.0
info:
  title: Update the path for an API endpoint
  version: 1.0.0
actions:
  - target: '$.paths'
    update: { "/new-items": {} }
  - target: '$.paths["/new-items"]'
    copy: '$.paths["/items"]'
  - target: '$.paths["/items"]'
    remove: true
    description: 'moves (renames) the "items" path item to "new-items"'
""",
        """
openapi: 3.1.0
info:
  title: Example API
  version: 1.0.0
paths:
  /new-items:
    get:
      responses:
        200:
          description: OK
  /some-items:
    delete:
      responses:
        200:
          description: OK
""",
    ),
]


@pytest.mark.parametrize(
    ("overlay_text", "result_text"), SPEC_COPY_EXAMPLES, ids=["simple-copy", "ensure-target-then-copy", "move"]
)
def test_spec_copy_examples_give_the_spec_results(overlay_text: str, result_text: str) -> None:
    out = apply(SPEC_SOURCE, yaml.safe_load(overlay_text))
    assert out == yaml.safe_load(result_text)


def test_spec_targeted_example_1_1_updates_primitives_in_place() -> None:
    doc = {
        "paths": {
            "/foo": {"get": {"description": "old foo", "summary": "Foo"}},
            "/bar": {"get": {"description": "old bar"}, "post": {"description": "old post", "x-safe": True}},
        }
    }
    ov = yaml.safe_load(
        """
overlay: 1.1.0
info:
  title: Targeted Overlay
  version: 1.0.0
actions:
  - target: $.paths['/foo'].get.description
    update: This is the new description
  - target: $.paths['/bar'].get.description
    update: This is the updated description
  - target: $.paths['/bar']
    update:
      post:
        description: This is an updated description of a child object
        x-safe: false
"""
    )
    assert apply(doc, ov) == {
        "paths": {
            "/foo": {"get": {"description": "This is the new description", "summary": "Foo"}},
            "/bar": {
                "get": {"description": "This is the updated description"},
                "post": {"description": "This is an updated description of a child object", "x-safe": False},
            },
        }
    }
    # The same document labelled 1.0 is refused: 1.0 targets must be objects or arrays.
    with pytest.raises(OverlayError, match="update needs an object or array"):
        apply(doc, {**ov, "overlay": "1.0.0"})


def test_spec_remove_primitive_array_element_example() -> None:
    doc = {"paths": {"/a": {"get": {"tags": ["keep", "dummy", "also"]}}, "/b": {"get": {"tags": ["dummy"]}}}}
    ov = yaml.safe_load(
        """
overlay: 1.1.0
info:
  title: Remove a primitive array element
  version: 1.0.0
actions:
  - target: $.paths.*.get.tags[?@ == 'dummy']
    remove: true
"""
    )
    assert apply(doc, ov) == {"paths": {"/a": {"get": {"tags": ["keep", "also"]}}, "/b": {"get": {"tags": []}}}}


def test_spec_traits_example_gives_the_spec_result() -> None:
    source = yaml.safe_load(
        """
openapi: 3.1.0
info:
  title: API with a paged collection
  version: 1.0.0
paths:
  /items:
    get:
      x-oai-traits: ['paged']
      responses:
        200:
          description: OK
  /items/{id}/subitems:
    get:
      x-oai-traits: ['paged']
      parameters:
        - name: id
          in: path
          required: true
      responses:
        200:
          description: OK
  /other:
    get:
      responses:
        200:
          description: OK
"""
    )
    ov = yaml.safe_load(
        """
overlay: 1.0.0
info:
  title: Apply Traits
  version: 1.0.0
actions:
  - target: $.paths[?(@.get['x-oai-traits'][?(@ == 'paged')])].get
    update:
      parameters:
        - name: top
          in: query
        - name: skip
          in: query
"""
    )
    result = yaml.safe_load(
        """
openapi: 3.1.0
info:
  title: API with a paged collection
  version: 1.0.0
paths:
  /items:
    get:
      x-oai-traits: ["paged"]
      responses:
        200:
          description: OK
      parameters:
        - name: top
          in: query
        - name: skip
          in: query
  /items/{id}/subitems:
    get:
      x-oai-traits: ["paged"]
      parameters:
        - name: id
          in: path
          required: true
        - name: top
          in: query
        - name: skip
          in: query
      responses:
        200:
          description: OK
  /other:
    get:
      responses:
        200:
          description: OK
"""
    )
    for version in ("1.0.0", "1.1.0"):
        assert apply(source, {**ov, "overlay": version}) == result, version


def test_spec_wildcard_and_array_examples_apply_alike_under_1_0_and_1_1() -> None:
    doc = {
        "paths": {
            "/a": {"get": {"parameters": [{"name": "filter", "in": "query"}, {"name": "dummy", "in": "query"}]}},
            "/b": {"get": {"parameters": [{"name": "filter", "in": "header"}]}, "post": {}},
        }
    }
    actions = [
        {"target": "$.paths.*.get", "update": {"x-safe": True}},
        {
            "target": "$.paths.*.get.parameters[?@.name=='filter' && @.in=='query']",
            "update": {"schema": {"$ref": "#/components/schemas/filterSchema"}},
        },
        {"target": "$.paths.*.get.parameters", "update": {"name": "newParam", "in": "query"}},
        {"target": "$.paths.*.get.parameters[?@.name == 'dummy']", "remove": True},
    ]
    expected = {
        "paths": {
            "/a": {
                "get": {
                    "parameters": [
                        {"name": "filter", "in": "query", "schema": {"$ref": "#/components/schemas/filterSchema"}},
                        {"name": "newParam", "in": "query"},
                    ],
                    "x-safe": True,
                }
            },
            "/b": {
                "get": {
                    "parameters": [{"name": "filter", "in": "header"}, {"name": "newParam", "in": "query"}],
                    "x-safe": True,
                },
                "post": {},
            },
        }
    }
    assert apply(doc, overlay(*actions)) == expected
    assert apply(doc, overlay_1_1(*actions)) == expected


def test_spec_structured_example_merges_from_the_root() -> None:
    # The specification's example also lists bare `components:` and `tags:` keys as placeholders;
    # they are left out here (as null values they would replace or refuse to merge).
    doc = {"info": {"title": "T", "version": "1"}, "paths": {"/": {"get": {}}, "/pets": {"get": {"summary": "x"}}}}
    update = {
        "info": {"x-overlay-applied": "structured-overlay"},
        "paths": {
            "/": {
                "summary": "The root resource",
                "get": {"summary": "Retrieve the root resource", "x-rate-limit": 100},
            },
            "/pets": {"get": {"summary": "Retrieve a list of pets", "x-rate-limit": 100}},
        },
    }
    expected = {
        "info": {"title": "T", "version": "1", "x-overlay-applied": "structured-overlay"},
        "paths": {
            "/": {
                "get": {"summary": "Retrieve the root resource", "x-rate-limit": 100},
                "summary": "The root resource",
            },
            "/pets": {"get": {"summary": "Retrieve a list of pets", "x-rate-limit": 100}},
        },
    }
    for make in (overlay, overlay_1_1):
        assert apply(doc, make({"target": "$", "update": update})) == expected


def test_copy_merges_the_source_into_every_target_like_update() -> None:
    doc = {
        "components": {"responses": {"RateLimited": {"description": "Slow down", "headers": {"Retry-After": {}}}}},
        "paths": {"/a": {"get": {"responses": {}}}, "/b": {"get": {"responses": {"429": {"x-ours": 1}}}}},
    }
    out = apply(
        doc,
        overlay_1_1(
            {"target": "$.paths.*.get.responses", "update": {"429": {}}},
            {"target": "$.paths.*.get.responses['429']", "copy": "$.components.responses.RateLimited"},
        ),
    )
    rate_limited = doc["components"]["responses"]["RateLimited"]
    assert out["paths"]["/a"]["get"]["responses"]["429"] == rate_limited
    assert out["paths"]["/b"]["get"]["responses"]["429"] == {**rate_limited, "x-ours": 1}
    a, b = (out["paths"][p]["get"]["responses"]["429"]["headers"] for p in ("/a", "/b"))
    assert a is not b


def test_copy_into_arrays_appends_and_into_primitives_replaces() -> None:
    doc = {"tags": ["a"], "more": ["b", "c"], "x": {"name": "n"}, "title": "old", "new": "new"}
    out = apply(doc, overlay_1_1({"target": "$.tags", "copy": "$.more"}, {"target": "$.title", "copy": "$.new"}))
    assert out["tags"] == ["a", "b", "c"]
    assert out["title"] == "new"
    out = apply(doc, overlay_1_1({"target": "$.tags", "copy": "$.x"}))
    assert out["tags"] == ["a", {"name": "n"}]


def test_copy_source_is_read_from_the_document_as_earlier_actions_left_it() -> None:
    doc = {"a": {"v": 1}, "b": {}}
    out = apply(doc, overlay_1_1({"target": "$.a", "update": {"w": 2}}, {"target": "$.b", "copy": "$.a"}))
    assert out["b"] == {"v": 1, "w": 2}


def test_copy_with_remove_false_copies_and_a_target_selecting_nothing_is_a_no_op() -> None:
    doc = {"a": {"v": 1}, "b": {}}
    assert apply(doc, overlay_1_1({"target": "$.b", "copy": "$.a", "remove": False}))["b"] == {"v": 1}
    # With no target node the action succeeds unchanged (the spec), even before the source is looked at.
    assert apply(doc, overlay_1_1({"target": "$.missing", "copy": "$.nothing"})) == doc


def test_info_description_is_part_of_1_1() -> None:
    ov = {**overlay_1_1({"target": "$.info", "update": {"title": "T"}})}
    ov["info"] = {**ov["info"], "description": "What this overlay is for, in *CommonMark*."}
    assert apply(DOC, ov)["info"]["title"] == "T"


def test_overlay_1_1_patch_versions_are_accepted() -> None:
    for version in ("1.1.0", "1.1.1", "1.1.12", "1.0.3"):
        ov = {**overlay({"target": "$.info", "update": {"x": 1}}), "overlay": version}
        assert apply(DOC, ov)["info"]["x"] == 1


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (overlay_1_1({"target": "$.paths['/a']", "copy": "$.paths['/nope']"}),
         "action 0: copy source \"$.paths['/nope']\" selects nothing; it must select exactly one node"),
        (overlay_1_1({"target": "$.paths['/a']", "copy": "$.paths.*"}),
         "action 0: copy source '$.paths.*' selects 2 nodes; it must select exactly one node"),
        (overlay_1_1({"target": "$.info", "copy": "$.tags[0]", "update": {"x": 1}}),
         "action 0: 'copy' and 'update' cannot be used together"),
        (overlay_1_1({"target": "$.info", "copy": "$.tags[0]", "remove": True}),
         "action 0: 'copy' and 'remove: true' cannot be used together"),
        (overlay({"target": "$.info", "copy": "$.tags[0]"}),
         "action 0: 'copy' is an Overlay 1.1 action; this document says overlay 1.0.0 (use overlay: 1.1.0)"),
        (overlay_1_1({"target": "$.info", "copy": 3}), "action 0: 'copy' must be a string"),
        (overlay_1_1({"target": "$.info", "copy": "info"}), "action 0: copy 'info' is not an RFC 9535 JSONPath: ..."),
        ({**overlay_1_1({"target": "$.info", "update": {}}), "info": {"title": "t", "version": "1", "description": 1}},
         "overlay info 'description' must be a string"),
        ({**overlay_1_1({"target": "$"}), "overlay": "1.2.0"},
         "unsupported overlay version '1.2.0'; expected 1.0.x or 1.1.x"),
        (overlay_1_1({"target": "$.paths['/a'].get.*", "update": "x"}),
         "action 0: target \"$.paths['/a'].get.*\" selects a mix of array and primitive nodes; "
         "they must be all objects, all arrays or all primitives"),
        (overlay_1_1({"target": "$.info.title", "update": {"a": 1}}),
         "action 0: update: target $['info']['title'] is a primitive, so the value must be a primitive"),
        (overlay_1_1({"target": "$.info", "update": "x"}),
         "action 0: update: target $['info'] is an object, so the value must be an object"),
        (overlay_1_1({"target": "$.info", "update": {"title": {"text": "T"}}}),
         "action 0: update: cannot merge object into the primitive at $['info']['title']"),
        (overlay_1_1({"target": "$.paths['/a']", "copy": "$.paths['/b'].get.summary"}),
         "action 0: copy: target $['paths']['/a'] is an object, so the value must be an object"),
        (overlay_1_1({"target": "$", "update": {"tags": {"name": "b"}}}),
         "action 0: update: cannot merge object into the array at $['tags']"),
    ],
    ids=[
        "copy-source-selects-nothing", "copy-source-selects-several", "copy-with-update", "copy-with-remove",
        "copy-in-1.0", "copy-not-a-string", "copy-not-jsonpath", "info-description-not-a-string",
        "unsupported-1.2", "mixed-target-kinds", "object-into-primitive-target", "primitive-into-object-target",
        "merge-object-into-primitive-property", "copy-primitive-into-object", "merge-object-into-array-property",
    ],
)  # fmt: skip
def test_overlay_1_1_errors_are_clear(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(OverlayError) as info:
        apply(DOC, doc)
    if message.endswith("..."):  # the rest is the JSONPath parser's own wording
        assert str(info.value).startswith(message[:-3])
    else:
        assert str(info.value) == message


def test_1_0_merge_is_unchanged_where_1_1_refuses() -> None:
    # 1.0 documents keep the merge they always had: an object replaces a string property.
    ov = {"target": "$.info", "update": {"title": {"text": "T"}}}
    assert apply(DOC, overlay(ov))["info"]["title"] == {"text": "T"}
    with pytest.raises(OverlayError, match="cannot merge object into the primitive"):
        apply(DOC, overlay_1_1(ov))


def test_cli_applies_a_1_1_copy(tmp_path: Path) -> None:
    spec, ov = tmp_path / "s.yaml", tmp_path / "o.yaml"
    spec.write_text(yaml.safe_dump(SPEC_SOURCE))
    ov.write_text(SPEC_COPY_EXAMPLES[0][0])
    script = ROOT / "scripts" / "apply_overlay.py"
    proc = subprocess.run([sys.executable, script, spec, ov], capture_output=True, text=True, check=True)
    assert yaml.safe_load(proc.stdout) == yaml.safe_load(SPEC_COPY_EXAMPLES[0][1])
    ov.write_text(SPEC_COPY_EXAMPLES[0][0].replace('"/items"]', '"/gone"]'))
    proc = subprocess.run([sys.executable, script, spec, ov], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"apply_overlay: {ov}: action 0: copy source '$.paths[\"/gone\"]' selects nothing; "
        "it must select exactly one node\n"
    )
