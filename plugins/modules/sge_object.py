#!/usr/bin/python
# Copyright: segway.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sge_object
short_description: Idempotently manage a Grid Engine queue, host group, PE or configuration
version_added: 0.1.0
description:
  - Reads one Grid Engine configuration object with C(qconf -s<kind>), sets the given
    attributes, and writes it back with C(qconf -A<kind> FILE) (new object) or
    C(qconf -M<kind> FILE) (changed object) only when an attribute differs.
  - With I(objects), one call handles several objects in the order given (a host group
    before the queue that names it), each as a call of its own would; this saves a module
    run per object. Every object is checked before the first is written.
  - Attributes not given keep their current value; a new queue, parallel environment or
    host group starts from Grid Engine 8.1.9's own template (with C(pe_list NONE), since
    Debian creates none of the PEs the stock template names).
  - List values are compared as Grid Engine means them; word lists such as C(hostlist)
    and C(pe_list) ignore order, and the C([host=value]) overrides of C(slots) or
    C(complex_values) ignore order.
author:
  - segway.cluster developers (!UNKNOWN)
options:
  kind:
    description:
      - C(queue) (cluster queue), C(pe) (parallel environment), C(hostgroup),
        C(scheduler) (the scheduler configuration) or C(global) (the global
        cluster configuration).
      - Required unless I(objects) is given; not used with it.
    type: str
    choices: [global, hostgroup, pe, queue, scheduler]
  name:
    description:
      - Name of the queue, PE or host group (host groups start with C(@)).
      - Not used for C(scheduler) and C(global).
    type: str
  attributes:
    description:
      - Attributes to set, as qconf names them (C(slots), C(hostlist), C(shell), ...).
      - A list value is written space-separated (C([smp, mpi]) becomes C(smp mpi));
        an empty list is C(NONE).
    type: dict
    default: {}
  state:
    description:
      - C(present) creates or updates the object; C(absent) deletes it (queues, PEs
        and host groups only).
    type: str
    choices: [present, absent]
    default: present
  objects:
    description:
      - Several objects, handled in this order, each with the options of a single object.
      - Mutually exclusive with I(kind), I(name), I(attributes) and I(state).
    type: list
    elements: dict
    suboptions:
      kind:
        description: As I(kind) above.
        type: str
        required: true
        choices: [global, hostgroup, pe, queue, scheduler]
      name:
        description: As I(name) above.
        type: str
      attributes:
        description: As I(attributes) above.
        type: dict
        default: {}
      state:
        description: As I(state) above.
        type: str
        choices: [present, absent]
        default: present
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - segway.cluster.sge
attributes:
  check_mode:
    support: full
    details: Reads the object and reports the attributes it would change, writing nothing.
  diff_mode:
    support: full
    details: The diff shows the whole object as C(qconf) shows it, before and after.
  platform:
    platforms: posix
notes:
  - Run on a host that is a Grid Engine admin host, as a manager (root or the admin user).
seealso:
  - module: segway.cluster.sge_complex
"""

EXAMPLES = r"""
- name: Host group of the compute nodes
  segway.cluster.sge_object:
    kind: hostgroup
    name: "@allhosts"
    attributes:
      hostlist: [node001, node002]

- name: Parallel environment for multi-threaded jobs on one host
  segway.cluster.sge_object:
    kind: pe
    name: smp
    attributes:
      slots: 9999
      allocation_rule: $pe_slots
      qsort_args: NONE

- name: The queue Segway's jobs run in
  segway.cluster.sge_object:
    kind: queue
    name: all.q
    attributes:
      hostlist: "@allhosts"
      shell: /bin/bash
      pe_list: [smp, mpi]
      slots: "1,[node001=4],[node002=4]"

- name: A host group and the queue that names it, in one module run
  segway.cluster.sge_object:
    objects:
      - kind: hostgroup
        name: "@allhosts"
        attributes: {hostlist: [node001, node002]}
      - kind: queue
        name: all.q
        attributes: {hostlist: "@allhosts"}

- name: Schedule short jobs as soon as they are submitted
  segway.cluster.sge_object:
    kind: scheduler
    attributes:
      schedule_interval: "0:0:5"
      flush_submit_sec: 1
      flush_finish_sec: 1
"""

RETURN = r"""
object:
  description: The object's attributes after the run (what would be written, in check mode).
  returned: when state is present, without I(objects)
  type: dict
  sample: {"group_name": "@allhosts", "hostlist": "node001 node002"}
changed_attributes:
  description: Attribute names whose value changed (all of them for a new object).
  returned: without I(objects)
  type: list
  elements: str
  sample: [hostlist]
created:
  description: Whether the object did not exist before.
  returned: without I(objects)
  type: bool
results:
  description:
    - With I(objects), one entry per object in the order given, each with C(kind), C(name),
      C(changed), C(created), C(changed_attributes) and (state present) C(object).
  returned: with I(objects)
  type: list
  elements: dict
  sample: [{"kind": "hostgroup", "name": "@allhosts", "changed": true, "created": false,
            "changed_attributes": [hostlist], "object": {"hostlist": "node001"}}]
"""

import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.sge import (  # noqa: E402
    DEBIAN_SGE_ROOT,
    DEFAULT_SGE_CELL,
    Qconf,
    QconfError,
    find_qconf,
    parse_name_list,
    sge_argument_spec,
)
from ansible_collections.segway.cluster.plugins.module_utils.sge_objects import (  # noqa: E402
    KINDS,
    Kind,
    differences,
    parse_object,
    render_object,
    unknown_attributes,
    wanted_object,
)


def read_current(qconf: Qconf, kind: Kind, name: str | None) -> dict[str, str] | None:
    """The object as qconf shows it, or None when it does not exist."""
    if kind.singleton:
        return parse_object(qconf.run(kind.show))
    try:
        names = parse_name_list(qconf.run(kind.listing))
    except QconfError as error:
        if error.kind != "rejected":
            raise
        names = []  # qconf fails with "no ... defined" when the list is empty
    if name not in names:
        return None
    return parse_object(qconf.run(kind.show, name))


def write(qconf: Qconf, kind: Kind, option: str, obj: dict[str, str]) -> None:
    """Feed `obj` to `qconf OPTION FILE`, in a file named as qconf requires."""
    if kind.file_name is None:
        qconf.run_with_file(option, render_object(obj))
        return
    directory = tempfile.mkdtemp(prefix="sge_object_")
    try:
        path = os.path.join(directory, kind.file_name)
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(render_object(obj))
        qconf.run(option, path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class ObjectError(Exception):
    """A bad object given to the module (a message naming the option and the value)."""


OBJECT_OPTIONS = {
    "kind": {"type": "str", "choices": sorted(KINDS)},
    "name": {"type": "str"},
    "attributes": {"type": "dict", "default": {}},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}
ARGUMENT_SPEC = {
    **OBJECT_OPTIONS,
    "objects": {
        "type": "list",
        "elements": "dict",
        "options": {**OBJECT_OPTIONS, "kind": {**OBJECT_OPTIONS["kind"], "required": True}},
    },
    **sge_argument_spec(),
}


def validate(spec: dict, where: str = "") -> Kind:
    """The object's kind, once its name, state and attributes make sense for it."""
    kind_name, name = spec["kind"], spec["name"]
    kind = KINDS[kind_name]
    if kind.singleton:
        if name:
            raise ObjectError(
                f"{where}name={name!r} is not used with kind={kind_name}: leave it out"
            )
        if spec["state"] == "absent":
            raise ObjectError(
                f"{where}state=absent is not allowed for kind={kind_name}: it always exists"
            )
        return kind
    if not name:
        raise ObjectError(f"{where}name is required for kind={kind_name}")
    if kind_name == "hostgroup" and not name.startswith("@"):
        raise ObjectError(
            f"{where}name={name!r} is not a host group name: host group names start with '@'"
        )
    for key, value in spec["attributes"].items():
        if isinstance(value, dict) or value is None:
            raise ObjectError(
                f"{where}attributes[{key!r}]={value!r} is not allowed: "
                "give a string, number, bool or list"
            )
    return kind


def plan(qconf: Qconf, spec: dict, kind: Kind) -> tuple[dict, dict, tuple | None]:
    """What bringing one object to `spec` changes: its result, its diff (before, after)
    and the write to make (None when nothing differs). Reads only."""
    name = spec["name"]
    current = read_current(qconf, kind, name)
    if spec["state"] == "absent":
        result = {
            "changed": current is not None,
            "created": False,
            "changed_attributes": sorted(current or {}),
        }
        diff = {"before": render_object(current) if current else "", "after": ""}
        return result, diff, (("delete", name) if current is not None else None)

    unknown = unknown_attributes(kind, current, spec["attributes"])
    if unknown:
        raise ObjectError(
            f"attributes {unknown} are not attributes of a {spec['kind']}; "
            f"known: {sorted(current or dict(kind.template))}"
        )
    wanted = wanted_object(kind, name, current, spec["attributes"])
    changes = differences(current, wanted)
    result = {
        "changed": bool(changes),
        "created": current is None,
        "object": wanted,
        "changed_attributes": sorted(changes),
    }
    diff = {"before": render_object(current) if current else "", "after": render_object(wanted)}
    return result, diff, (("add" if current is None else "modify", wanted) if changes else None)


def make(qconf: Qconf, kind: Kind, action: tuple) -> None:
    if action[0] == "delete":
        qconf.run(kind.delete, action[1])
    else:
        write(qconf, kind, kind.add if action[0] == "add" else kind.modify, action[1])


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[
            ("objects", "kind"),
            ("objects", "name"),
            ("objects", "attributes"),
            ("objects", "state"),
        ],
        required_one_of=[("objects", "kind")],
        supports_check_mode=True,
    )
    params = module.params
    many = params["objects"] is not None
    specs = params["objects"] if many else [params]
    where = [f"objects[{index}]: " if many else "" for index in range(len(specs))]
    try:
        kinds = [validate(spec, at) for spec, at in zip(specs, where, strict=True)]
    except ObjectError as error:
        module.fail_json(msg=str(error))
    # The argument spec already fell back to SGE_ROOT/SGE_CELL and the defaults; an empty
    # value given on purpose still means "not set", as it always did for this module.
    sge_root = params["sge_root"] or os.environ.get("SGE_ROOT") or DEBIAN_SGE_ROOT
    sge_cell = params["sge_cell"] or os.environ.get("SGE_CELL") or DEFAULT_SGE_CELL
    binary = find_qconf(sge_root, which=module.get_bin_path)
    if binary is None:
        module.fail_json(
            msg=f"qconf not found under sge_root={sge_root!r} nor on PATH: "
            "is gridengine-client installed?"
        )
    qconf = Qconf(module.run_command, binary, sge_root, sge_cell, tmpdir=module.tmpdir)

    results, diffs, actions = [], [], []
    try:
        # Every object is read and checked before the first write.
        for spec, kind, at in zip(specs, kinds, where, strict=True):
            try:
                result, diff, action = plan(qconf, spec, kind)
            except ObjectError as error:
                module.fail_json(msg=at + str(error))
            label = f"{spec['kind']} {spec['name']}" if spec["name"] else spec["kind"]
            results.append({"kind": spec["kind"], "name": spec["name"], **result})
            diffs.append(
                {**diff, "before_header": f"{label} (before)", "after_header": f"{label} (after)"}
            )
            actions.append(action)
        if not module.check_mode:
            for kind, action, at in zip(kinds, actions, where, strict=True):
                if action is not None:
                    try:
                        make(qconf, kind, action)
                    except QconfError as error:
                        error.message = at + error.message
                        raise
    except QconfError as error:
        module.fail_json(msg=error.message, failure=error.kind)

    if not many:
        result = {k: v for k, v in results[0].items() if k not in ("kind", "name")}
        if module._diff:
            result["diff"] = {"before": diffs[0]["before"], "after": diffs[0]["after"]}
        module.exit_json(**result)
    result = {"changed": any(r["changed"] for r in results), "results": results}
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
