#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.sge_complex: one Grid Engine complex and its host values."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sge_complex
short_description: Manage a Grid Engine complex attribute and its per-host values
version_added: 0.1.0
description:
  - Makes sure one complex attribute, a line of C(qconf -sc), is defined exactly as given,
    or is absent.
  - With O(host_values), also sets the value of that complex in the C(complex_values) of
    each named exec host, keeping every other complex value of that host.
  - Reads the complex list and the named hosts first and writes only what differs, the
    complex list with C(qconf -Mc FILE) and each host value with
    C(qconf -mattr exechost complex_values NAME=VALUE HOST). No editor is ever started.
  - Every option is checked before anything is written, against the rules of Son of Grid
    Engine 8.1.9's qmaster (type and relational operator, consumable, default, urgency,
    value syntax), and so are the exec hosts named and the caller's manager rights.
    A failure names the option and the value at fault.
  - The defaults define Segway's memory consumable
    C(mem_requested mr MEMORY <= YES YES 0 10), which its jobs request with
    C(-l mem_requested=2G).
options:
  name:
    description:
      - Name of the complex attribute.
      - Letters, digits, V(_), V(.) and V(-).
    type: str
    default: mem_requested
  shortcut:
    description:
      - Short name that jobs may use instead of O(name) in C(-l) requests.
      - Must not be the name or shortcut of another complex.
    type: str
    default: mr
  type:
    description:
      - Value type of the complex.
      - V(STRING), V(CSTRING), V(RESTRING) and V(HOST) allow only the relational operators
        V(==) and V(!=), cannot be consumable, and must have O(default=NONE).
      - V(BOOL) allows only V(==), or V(EXCL) for an exclusive consumable.
    type: str
    default: MEMORY
    choices: [INT, DOUBLE, MEMORY, BOOL, STRING, CSTRING, RESTRING, TIME, HOST]
  relop:
    description:
      - Relational operator used to compare a request with the available value.
      - A consumable must use V(<=) (or V(EXCL) for a V(BOOL)); V(EXCL) is only for
        consumable V(BOOL) complexes.
    type: str
    default: "<="
    choices: ["==", "!=", "<", "<=", ">", ">=", EXCL]
  requestable:
    description:
      - Whether jobs may request the complex (V(YES)), may not (V(NO)), or must (V(FORCED)).
      - Quote the value in YAML, an unquoted V(YES) or V(NO) is read as a boolean.
    type: str
    default: "YES"
    choices: ["YES", "NO", FORCED]
  consumable:
    description:
      - Whether the complex is consumed by jobs, per slot (V(YES)), per job (V(JOB)), per
        host (V(HOST)), or not at all (V(NO)).
      - Only V(INT), V(DOUBLE), V(MEMORY) and V(TIME) (with O(relop=<=)) and V(BOOL) (with
        O(relop=EXCL)) can be consumable.
      - V(HOST) needs a Grid Engine with per-host consumables; Son of Grid Engine 8.1.9's
        C(qconf) refuses it, and the module then fails without having changed anything.
      - Quote the value in YAML, an unquoted V(YES) or V(NO) is read as a boolean.
    type: str
    default: "YES"
    choices: ["YES", "NO", JOB, HOST]
  default:
    description:
      - Value used for a job that does not request the complex.
      - Must be V(0) (V(NONE) for string types) unless the complex is consumable. A
        consumable that is not requestable needs a non-zero default, a forced one V(0).
      - For V(MEMORY), V(INT) and V(DOUBLE), a non-negative number with an optional
        multiplier V(k), V(K), V(m), V(M), V(g), V(G), V(t), V(T) (lower case x1000, upper
        case x1024); V(3X) or V(-1G) are refused. For V(TIME), V(h:m:s) or seconds.
    type: str
    default: "0"
  urgency:
    description:
      - Urgency weight of the complex in job priority, a number.
    type: str
    default: "10"
  host_values:
    description:
      - Mapping of exec host name to the value of this complex on that host, set in the
        host's C(complex_values); the host's other complex values are kept.
      - Each host must be listed by C(qconf -sel); the name V(global) sets the cluster-wide
        value.
      - Values follow the syntax of O(type), see O(default); values that mean the same
        (V(1G) and V(1024M)) are not rewritten.
      - Hosts not named are left alone. Only used with O(state=present).
    type: dict
  state:
    description:
      - V(present) defines the complex (and sets O(host_values)); V(absent) removes it.
      - V(absent) fails, changing nothing, while an exec host (V(global) included) or a
        queue still has the complex in its C(complex_values); the message lists them.
    type: str
    default: present
    choices: [present, absent]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - segway.cluster.sge
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the complex line and the value on each named host.
  platform:
    platforms: posix
requirements:
  - The Grid Engine client (C(qconf)) on the target, an SGE admin host.
  - The target user must be an SGE manager (C(qconf -sm)); root is one. This is checked
    whenever something would change, in check mode too.
notes:
  - C(qconf -Mc) replaces the whole complex list. The module writes every other entry back
    exactly as it read it, a moment before; a complex added by someone else in between
    would be lost. Son of Grid Engine 8.1.9 has no command to add or change a single entry.
seealso:
  - name: sge_complex(5)
    description: Format of the complex list.
    link: https://manpages.debian.org/bookworm/gridengine-common/sge_complex.5.en.html
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Define Segway's memory consumable (mem_requested mr MEMORY <= YES YES 0 10)
  segway.cluster.sge_complex:

- name: Define it and give each exec host its memory (SGE host names = inventory names)
  segway.cluster.sge_complex:
    host_values: "{{ dict(groups['compute'] | zip(memory)) }}"
  vars:
    memory: >-
      {{ groups['compute'] | map('extract', hostvars, 'ansible_memtotal_mb')
         | map('regex_replace', '$', 'M') | list }}

- name: Set the value on two hosts, keeping their other complex values
  segway.cluster.sge_complex:
    host_values:
      node001: 15G
      node002: 30G

- name: A per-job licence counter, cluster-wide
  segway.cluster.sge_complex:
    name: matlab_lic
    shortcut: mlic
    type: INT
    consumable: JOB
    urgency: "0"
    host_values:
      global: 4

- name: A non-consumable string attribute
  segway.cluster.sge_complex:
    name: instance_type
    shortcut: itype
    type: STRING
    relop: "=="
    consumable: "NO"
    default: NONE
    urgency: "0"

- name: Preview a change of urgency
  segway.cluster.sge_complex:
    urgency: "20"
  check_mode: true
  diff: true

- name: Remove a complex no host or queue uses any more
  segway.cluster.sge_complex:
    name: matlab_lic
    state: absent
"""

RETURN = r"""
complex:
  description:
    - The complex entry after the task (as it would be in check mode); empty when
      O(state=absent).
  returned: always
  type: dict
  sample:
    name: mem_requested
    shortcut: mr
    type: MEMORY
    relop: "<="
    requestable: "YES"
    consumable: "YES"
    default: "0"
    urgency: "10"
  contains:
    name:
      description: Name of the complex.
      type: str
      returned: when O(state=present)
    shortcut:
      description: Shortcut of the complex.
      type: str
      returned: when O(state=present)
    type:
      description: Value type.
      type: str
      returned: when O(state=present)
    relop:
      description: Relational operator.
      type: str
      returned: when O(state=present)
    requestable:
      description: V(YES), V(NO) or V(FORCED).
      type: str
      returned: when O(state=present)
    consumable:
      description: V(YES), V(NO), V(JOB) or V(HOST).
      type: str
      returned: when O(state=present)
    default:
      description: Default value.
      type: str
      returned: when O(state=present)
    urgency:
      description: Urgency weight.
      type: str
      returned: when O(state=present)
hosts_changed:
  description: Exec hosts whose C(complex_values) were changed (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [node001, node002]
references:
  description:
    - Exec hosts and queues that still use the complex, when O(state=absent) failed
      because of them.
  returned: failure
  type: dict
  sample:
    hosts: [global, node001]
    queues: [all.q]
"""

import os  # noqa: E402
import pwd  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.sge import (  # noqa: E402
    COMPLEX_FIELDS,
    COMPLEX_TYPES,
    CONSUMABLE,
    GLOBAL_HOST,
    RELOPS,
    REQUESTABLE,
    ComplexEntry,
    Qconf,
    QconfError,
    complex_equal,
    complex_errors,
    find_complex,
    find_qconf,
    host_value_changes,
    host_value_errors,
    make_complex,
    name_conflicts,
    remove_complex,
    sge_argument_spec,
    upsert_complex,
)

ARGUMENT_SPEC = {
    "name": {"type": "str", "default": "mem_requested"},
    "shortcut": {"type": "str", "default": "mr"},
    "type": {"type": "str", "default": "MEMORY", "choices": list(COMPLEX_TYPES)},
    "relop": {"type": "str", "default": "<=", "choices": list(RELOPS)},
    "requestable": {"type": "str", "default": "YES", "choices": list(REQUESTABLE)},
    "consumable": {"type": "str", "default": "YES", "choices": list(CONSUMABLE)},
    "default": {"type": "str", "default": "0"},
    "urgency": {"type": "str", "default": "10"},
    "host_values": {"type": "dict"},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    **sge_argument_spec(),
}


class RequestError(Exception):
    """The request cannot be carried out as asked; nothing has been written."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details


def value_text(value: object) -> str:
    """A host value from YAML as SGE text (booleans as TRUE/FALSE)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value).strip()


def request_errors(wanted: ComplexEntry, host_values: dict[str, str], state: str) -> list[str]:
    """Everything wrong with the options alone, before SGE is asked anything."""
    errors = complex_errors(wanted)
    if state == "absent":
        if host_values:
            errors.append(
                "host_values cannot be used with state=absent: a complex is only "
                "removed once no host or queue has a value for it"
            )
        return errors
    if wanted.type in COMPLEX_TYPES:
        errors.extend(host_value_errors(wanted.type, host_values))
    return errors


def state_text(name: str, entry: ComplexEntry | None, values: dict[str, str | None]) -> str:
    """The complex line and each host's value, as shown in diff mode."""
    lines = ["complex: " + (entry.line() if entry else "(absent)")]
    for host in sorted(values):
        value = values[host]
        lines.append(f"host {host}: " + (f"{name}={value}" if value is not None else "(unset)"))
    return "\n".join(lines) + "\n"


def require_manager(qconf: Qconf, user: str) -> None:
    managers = qconf.managers()
    if user not in managers:
        raise RequestError(
            f"user {user!r} is not an SGE manager (managers: {', '.join(managers)}): run the "
            f"task as a manager, e.g. with become: true, or add it with `qconf -am {user}`"
        )


def check_hosts(qconf: Qconf, hosts: list[str]) -> None:
    known = qconf.exec_hosts()
    unknown = [host for host in hosts if host not in known and host != GLOBAL_HOST]
    if unknown:
        raise RequestError(
            f"host_values names unknown exec host(s) {', '.join(unknown)}: exec hosts are "
            f"{', '.join(known) or '(none)'} (see `qconf -sel`)"
        )


def ensure_present(
    qconf: Qconf, wanted: ComplexEntry, host_values: dict[str, str], check_mode: bool, user: str
) -> dict:
    entries = qconf.complexes()
    current = find_complex(entries, wanted.name)
    clashes = name_conflicts(entries, wanted)
    if clashes:
        raise RequestError(
            f"name={wanted.name!r} or shortcut={wanted.shortcut!r} is already "
            f"used by complex {', '.join(clashes)}"
        )
    complex_changed = current is None or not complex_equal(current, wanted)

    before: dict[str, dict[str, str]] = {}
    if host_values:
        check_hosts(qconf, list(host_values))
        before = {host: qconf.host_complex_values(host) for host in host_values}
    changes = host_value_changes(wanted.type, wanted.name, before, host_values)

    if complex_changed or changes:
        require_manager(qconf, user)
    if not check_mode:
        if complex_changed:
            qconf.modify_complexes(upsert_complex(entries, wanted))
        for host, (_before, value) in changes.items():
            qconf.set_host_complex_value(host, wanted.name, value)

    after = wanted if complex_changed else current
    values_before = {host: before[host].get(wanted.name) for host in host_values}
    values_after = {
        host: changes[host][1] if host in changes else values_before[host] for host in host_values
    }
    return {
        "changed": bool(complex_changed or changes),
        "complex": after.to_dict(),
        "hosts_changed": sorted(changes),
        "diff": {
            "before": state_text(wanted.name, current, values_before),
            "after": state_text(wanted.name, after, values_after),
        },
    }


def ensure_absent(qconf: Qconf, name: str, check_mode: bool, user: str) -> dict:
    entries = qconf.complexes()
    current = find_complex(entries, name)
    if current is None:
        text = state_text(name, None, {})
        return {
            "changed": False,
            "complex": {},
            "hosts_changed": [],
            "diff": {"before": text, "after": text},
        }
    references = qconf.complex_references(name)
    if references["hosts"] or references["queues"]:
        users = []
        if references["hosts"]:
            users.append("exec host(s) " + ", ".join(references["hosts"]))
        if references["queues"]:
            users.append("queue(s) " + ", ".join(references["queues"]))
        raise RequestError(
            f"cannot remove complex {name!r}: still referenced by {' and '.join(users)}; "
            "remove it from their complex_values first (nothing was changed)",
            references=references,
        )
    require_manager(qconf, user)
    if not check_mode:
        qconf.modify_complexes(remove_complex(entries, name))
    return {
        "changed": True,
        "complex": {},
        "hosts_changed": [],
        "diff": {"before": state_text(name, current, {}), "after": state_text(name, None, {})},
    }


def sge_arch(module: AnsibleModule, sge_root: str) -> str | None:
    """The architecture name that $SGE_ROOT/util/arch prints, if it can be run."""
    script = os.path.join(sge_root, "util", "arch")
    if not os.access(script, os.X_OK):
        return None
    rc, out, _err = module.run_command([script])
    return (out.strip() or None) if rc == 0 else None


def open_qconf(module: AnsibleModule) -> Qconf:
    """A Qconf for the requested root and cell, or fail saying what is missing."""
    root, cell = module.params["sge_root"], module.params["sge_cell"]
    binary = find_qconf(root, sge_arch(module, root), module.get_bin_path)
    if binary is None:
        module.fail_json(
            msg=f"qconf not found: not in {root}/bin/<arch>/ (sge_root={root!r}) nor on PATH; "
            "install the Grid Engine client (Debian: gridengine-client) or set sge_root"
        )
    act_qmaster = os.path.join(root, cell, "common", "act_qmaster")
    if not os.path.isfile(act_qmaster):
        module.fail_json(
            msg=f"no Grid Engine cell {cell!r} under sge_root={root!r}: {act_qmaster} does "
            "not exist; set sge_root and sge_cell (or SGE_ROOT and SGE_CELL)"
        )
    return Qconf(module.run_command, binary, root, cell, tmpdir=module.tmpdir)


def explain(error: QconfError, qconf: Qconf, wanted: ComplexEntry) -> str:
    """The message for a qconf failure, with what it most likely means."""
    where = f"SGE_ROOT={qconf.sge_root}, SGE_CELL={qconf.sge_cell}"
    if error.kind == "unreachable":
        path = os.path.join(qconf.sge_root, qconf.sge_cell, "common", "act_qmaster")
        try:
            with open(path) as stream:
                master = stream.read().strip()
        except OSError:
            master = "(unknown)"
        return f"sge_qmaster on {master!r} is unreachable ({where}); is it running? {error.message}"
    if error.kind == "denied":
        return (
            f"sge_qmaster refused the caller ({where}); the task must run as an SGE "
            f"manager on an admin host: {error.message}"
        )
    if error.kind == "cell":
        return f"qconf cannot use the cell ({where}): {error.message}"
    if wanted.consumable == "HOST" and "-Mc" in error.message:
        return (
            f"consumable=HOST was refused by this Grid Engine, which has no per-host "
            f"consumables (nothing was changed): {error.message}"
        )
    return error.message


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    wanted = make_complex(**{field: params[field] for field in COMPLEX_FIELDS})
    host_values = {
        str(host): value_text(value) for host, value in (params["host_values"] or {}).items()
    }
    errors = request_errors(wanted, host_values, params["state"])
    if errors:
        module.fail_json(msg="; ".join(errors), errors=errors)

    qconf = open_qconf(module)
    user = pwd.getpwuid(os.geteuid()).pw_name
    try:
        if params["state"] == "present":
            result = ensure_present(qconf, wanted, host_values, module.check_mode, user)
        else:
            result = ensure_absent(qconf, wanted.name, module.check_mode, user)
    except RequestError as error:
        module.fail_json(msg=str(error), **error.details)
    except QconfError as error:
        module.fail_json(msg=explain(error, qconf, wanted), qconf_error=error.kind)
    except ValueError as error:  # qconf printed something the parsers do not understand
        module.fail_json(msg=f"cannot read the output of qconf: {error}")
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
