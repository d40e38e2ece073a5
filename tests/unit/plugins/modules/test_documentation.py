"""Each module's DOCUMENTATION says what its ARGUMENT_SPEC does: names, types, defaults.

One check for every module that keeps its spec in an ARGUMENT_SPEC constant, suboptions
included, so `ansible-doc` never tells a user a default or a choice the module does not
have. Documentation fragments (segway.cluster.sge) are merged in as ansible-doc does.
"""

from __future__ import annotations

import importlib

import pytest
import yaml
from ansible_collections.segway.cluster.plugins.doc_fragments import sge as sge_fragment

FRAGMENTS = {"segway.cluster.sge": sge_fragment.ModuleDocFragment.DOCUMENTATION}
ATTRIBUTES_ONLY = "ansible.builtin.action_common_attributes"  # and its .files etc.: no options
MODULES = ["ebs_device", "sge_autoscale", "sge_complex", "sge_object"]
# What the documentation and the spec must agree on, with the spec's default when absent.
KEYS = {"type": "str", "default": None, "required": False, "choices": None, "elements": None}


def documented_options(module) -> dict:
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = dict(doc["options"])
    for fragment in doc.get("extends_documentation_fragment") or []:
        if fragment.startswith(ATTRIBUTES_ONLY):
            continue
        options.update(yaml.safe_load(FRAGMENTS[fragment])["options"])
    return options


def mismatches(doc: dict, spec: dict, where: str = "") -> list[str]:
    found = []
    if set(doc) != set(spec):
        found.append(f"{where}options: documented {sorted(doc)}, spec {sorted(spec)}")
    for name in sorted(set(doc) & set(spec)):
        for key, absent in KEYS.items():
            if doc[name].get(key, absent) != spec[name].get(key, absent):
                found.append(
                    f"{where}{name}.{key}: documented {doc[name].get(key, absent)!r}, "
                    f"spec {spec[name].get(key, absent)!r}"
                )
        if "suboptions" in doc[name] or "options" in spec[name]:
            found += mismatches(
                doc[name].get("suboptions", {}), spec[name].get("options", {}), f"{name}."
            )
    return found


@pytest.mark.parametrize("name", MODULES)
def test_argument_spec_matches_documentation(name):
    module = importlib.import_module(f"ansible_collections.segway.cluster.plugins.modules.{name}")
    assert mismatches(documented_options(module), module.ARGUMENT_SPEC) == []


def test_a_mismatch_is_found():
    doc = {"a": {"type": "int", "default": 1}, "p": {"type": "dict", "suboptions": {"x": {}}}}
    spec = {"a": {"type": "int", "default": 2}, "p": {"type": "dict", "options": {"y": {}}}}
    assert mismatches(doc, spec) == [
        "a.default: documented 1, spec 2",
        "p.options: documented ['x'], spec ['y']",
    ]
