"""scripts/apply_overlay.py implements OpenAPI Overlay 1.0 with RFC 9535 JSONPath targets."""

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
