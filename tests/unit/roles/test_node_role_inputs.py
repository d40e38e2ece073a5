"""The node roles own their inputs, and playbooks/configure.yml checks them once.

Read from the files themselves (no Ansible run): every default of roles/common,
ebs_mount, nfs, scratch, sge and segway_env names only the role's own variables (no fact, no
inventory, no other role's setting); what one role takes from another is mapped in
configure.yml's play vars, the same in both plays; the validate entry points set no
facts; configure.yml's first play runs every validate entry point, and its second play
turns each role's own check off, so that every input is checked once per run.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import jinja2.meta
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLES = ["common", "ebs_mount", "nfs", "scratch", "sge", "segway_env"]
CONFIGURE = yaml.safe_load((REPO / "playbooks" / "configure.yml").read_text())


def strings(value):
    """Every string inside a YAML value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def names_in(value) -> set[str]:
    env = jinja2.Environment(autoescape=False)  # noqa: S701 (only parsed, never rendered)
    return {
        name
        for text in strings(value)
        for name in jinja2.meta.find_undeclared_variables(env.parse(text))
    }


def yaml_file(path: Path):
    return yaml.safe_load(path.read_text())


def role_import(task: dict) -> dict:
    return task.get("ansible.builtin.import_role") or {}


def runs_validate(tasks: list[dict]) -> bool:
    """Whether these tasks (blocks included) include or import validate.yml."""
    for task in tasks:
        for key in ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks"):
            if task.get(key) == "validate.yml":
                return True
        if runs_validate(task.get("block", [])):
            return True
    return False


@pytest.mark.parametrize("role", ROLES)
def test_defaults_name_only_the_roles_own_variables(role: str) -> None:
    defaults = yaml_file(REPO / "roles" / role / "defaults" / "main.yml")
    foreign = {
        name
        for value in defaults.values()
        for name in names_in(value)
        if not name.startswith(f"{role}_")
    }
    assert foreign == set()


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_documented_and_any_documented_value_matches(role: str) -> None:
    defaults = yaml_file(REPO / "roles" / role / "defaults" / "main.yml")
    specs = yaml_file(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    options = specs["validate"]["options"]
    for name, value in defaults.items():
        assert name in options, name
        # Long values (the scheduler's settings) are left to defaults/main.yml.
        if "default" in options[name]:
            assert options[name]["default"] == value, name


@pytest.mark.parametrize("role", ROLES)
def test_validate_sets_no_facts(role: str) -> None:
    text = (REPO / "roles" / role / "tasks" / "validate.yml").read_text()
    assert "set_fact" not in text


@pytest.mark.parametrize("role", ROLES)
def test_no_namespace_loops(role: str) -> None:
    for path in (REPO / "roles" / role).rglob("*"):
        if path.suffix in (".yml", ".j2"):
            assert "namespace(" not in path.read_text(), path


def test_both_plays_take_the_same_mapping() -> None:
    check, configure = CONFIGURE
    # The second play adds only its own switch: a removal skips what it does not change.
    own = {"configure_removing": "{{ sge_remove_hosts | default([]) | length > 0 }}"}
    assert configure["vars"] == {**check["vars"], **own}
    mapping = check["vars"]
    # Each mapped name belongs to a node role and reads another role's setting or fact.
    for name, value in mapping.items():
        owner = next(role for role in ROLES if name.startswith(f"{role}_"))
        others = {n for n in names_in(value) if not n.startswith(f"{owner}_")}
        assert others, name
    assert mapping["sge_admin_user"] == "{{ common_cluster_user }}"
    assert mapping["nfs_segway_build_path"] == "{{ segway_env_build_path }}"
    assert mapping["nfs_remove_hosts"] == "{{ sge_remove_hosts }}"
    assert "nfs_client_paths" in mapping["sge_exec_shared_paths"]


def test_first_play_checks_every_role_before_any_change() -> None:
    check = CONFIGURE[0]
    assert check["any_errors_fatal"] is True
    imports = [role_import(task) for task in check["tasks"]]
    assert [(i["name"], i.get("tasks_from")) for i in imports] == [
        (f"segway.cluster.{role}", "validate") for role in ROLES
    ]


def test_second_play_does_not_check_again() -> None:
    configure = CONFIGURE[1]
    checked = set()
    for task in configure["tasks"]:
        imported = role_import(task)
        role = imported["name"].rsplit(".", 1)[1]
        entry = imported.get("tasks_from", "main")
        if runs_validate(yaml_file(REPO / "roles" / role / "tasks" / f"{entry}.yml")):
            # The entry point checks its inputs unless told not to: configure.yml tells it.
            assert task["vars"] == {f"{role}_check_inputs": False}, (role, entry)
            assert imported["rolespec_validate"] is False, (role, entry)
            checked.add(role)
    assert checked == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_main_entry_points_check_only_when_asked(role: str) -> None:
    entry = "volumes" if role == "ebs_mount" else "main"
    tasks = yaml_file(REPO / "roles" / role / "tasks" / f"{entry}.yml")
    check = next(t for t in tasks if runs_validate(t.get("block", [])))
    assert check["when"] == f"{role}_check_inputs"
    assert check["any_errors_fatal"] is True
    assert yaml_file(REPO / "roles" / role / "defaults" / "main.yml")[f"{role}_check_inputs"]


def test_sge_modules_get_root_and_cell_once() -> None:
    tasks = yaml_file(REPO / "roles" / "sge" / "tasks" / "master.yml")
    assert len(tasks) == 1
    block = tasks[0]
    assert block["module_defaults"] == {
        "group/segway.cluster.sge": {"sge_root": "{{ sge_root }}", "sge_cell": "{{ sge_cell }}"}
    }
    calls = [t for t in block["block"] if any(k.startswith("segway.cluster.sge_") for k in t)]
    # Two complexes, then the five other objects in one sge_object run.
    assert len(calls) == 3
    for task in calls:
        args = next(v for k, v in task.items() if k.startswith("segway.cluster.sge_"))
        assert "sge_root" not in args and "sge_cell" not in args, task["name"]


def test_a_removal_changes_only_grid_engine_and_the_exports() -> None:
    """remove_nodes.yml (sge_remove_hosts) runs roles/nfs and roles/sge, which then only
    touch the master's export list and Grid Engine; every other step is skipped."""
    ran = []
    for task in CONFIGURE[1]["tasks"]:
        imported = role_import(task)
        role = imported["name"].rsplit(".", 1)[1]
        when = task.get("when", "")
        when = " and ".join(when) if isinstance(when, list) else str(when)
        if "not configure_removing" not in when:
            ran.append((role, imported.get("tasks_from", "main")))
    assert ran == [("nfs", "main"), ("sge", "main")]
    nfs = yaml_file(REPO / "roles" / "nfs" / "tasks" / "main.yml")
    client = next(t for t in nfs if t.get("ansible.builtin.include_tasks") == "client.yml")
    assert "nfs_remove_hosts | length == 0" in client["when"]
    sge = {
        t["ansible.builtin.include_tasks"]: t
        for t in yaml_file(REPO / "roles" / "sge" / "tasks" / "main.yml")
        if "ansible.builtin.include_tasks" in t
    }
    for entry in ("install.yml", "environment.yml"):
        assert sge[entry]["when"] == "sge_remove_hosts | length == 0", entry
    assert sge["master.yml"]["when"] == "sge_is_master"
    assert sge["remove.yml"]["when"] == "sge_remove_hosts | length > 0"
