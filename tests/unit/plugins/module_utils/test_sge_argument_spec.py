"""The options every SGE module shares: sge_argument_spec(), its doc fragment, its group.

sge_root and sge_cell are specified once (plugins/module_utils/sge.py), documented once
(plugins/doc_fragments/sge.py) and can be set once for every SGE module through the action
group `sge` of meta/runtime.yml. These tests keep the three in step.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.segway.cluster.plugins.doc_fragments import sge as sge_fragment
from ansible_collections.segway.cluster.plugins.module_utils.sge import (
    DEBIAN_SGE_ROOT,
    DEFAULT_SGE_CELL,
    sge_argument_spec,
)

REPO = Path(__file__).resolve().parents[4]
MODULES = REPO / "plugins" / "modules"


def validated(params: dict) -> dict:
    result = ArgumentSpecValidator(sge_argument_spec()).validate(params)
    if result.error_messages:
        raise ValueError("; ".join(result.error_messages))
    return result.validated_parameters


def module_documentation(path: Path) -> dict:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "DOCUMENTATION" for target in node.targets
        ):
            return yaml.safe_load(ast.literal_eval(node.value))
    raise AssertionError(f"{path} has no DOCUMENTATION")


def test_defaults_are_debians(monkeypatch):
    monkeypatch.delenv("SGE_ROOT", raising=False)
    monkeypatch.delenv("SGE_CELL", raising=False)
    assert validated({}) == {"sge_root": DEBIAN_SGE_ROOT, "sge_cell": DEFAULT_SGE_CELL}
    assert DEBIAN_SGE_ROOT == "/var/lib/gridengine"
    assert DEFAULT_SGE_CELL == "default"


def test_environment_comes_before_the_defaults(monkeypatch):
    monkeypatch.setenv("SGE_ROOT", "/opt/sge")
    monkeypatch.setenv("SGE_CELL", "envcell")
    assert validated({}) == {"sge_root": "/opt/sge", "sge_cell": "envcell"}


def test_given_values_come_before_the_environment(monkeypatch):
    monkeypatch.setenv("SGE_ROOT", "/opt/sge")
    monkeypatch.setenv("SGE_CELL", "envcell")
    params = {"sge_root": "/srv/gridengine", "sge_cell": "c2"}
    assert validated(params) == params


def test_sge_root_is_a_path(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    assert validated({"sge_root": "~/sge"})["sge_root"] == "/home/someone/sge"


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="sge_rot"):
        validated({"sge_rot": "/opt/sge"})


def test_each_call_returns_a_fresh_spec():
    spec = sge_argument_spec()
    spec["sge_root"]["default"] = "/elsewhere"
    spec["extra"] = {"type": "str"}
    assert sge_argument_spec()["sge_root"]["default"] == DEBIAN_SGE_ROOT
    assert set(sge_argument_spec()) == {"sge_root", "sge_cell"}


def test_fragment_documents_the_spec():
    options = yaml.safe_load(sge_fragment.ModuleDocFragment.DOCUMENTATION)["options"]
    spec = sge_argument_spec()
    assert set(options) == set(spec)
    for name, option in options.items():
        assert option["type"] == spec[name]["type"], name
        assert option["default"] == spec[name]["default"], name


def test_action_group_is_the_modules_that_take_the_shared_options():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    group = runtime["action_groups"]["sge"]
    fragments = {
        path.stem: module_documentation(path).get("extends_documentation_fragment") or []
        for path in MODULES.glob("*.py")
    }
    extending = sorted(name for name, used in fragments.items() if "segway.cluster.sge" in used)
    assert sorted(group) == extending == ["sge_autoscale", "sge_complex", "sge_object"]
    fragment = yaml.safe_load(sge_fragment.ModuleDocFragment.DOCUMENTATION)
    assert fragment["attributes"]["action_group"]["membership"] == ["segway.cluster.sge"]
    for name in group:
        source = (MODULES / f"{name}.py").read_text(encoding="utf-8")
        assert "**sge_argument_spec()" in source, name
