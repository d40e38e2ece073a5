#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.sge_autoscale: one planning pass of Segway's autoscaler."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sge_autoscale
short_description: Plan one pass of Segway's Grid Engine autoscaler and log it
version_added: 0.1.0
description:
  - Runs on the Grid Engine master. Reads the pending jobs
    (C(qstat -xml -r -s p -u '*')), the exec hosts with their free C(mem_requested)
    (C(qhost -xml -F mem_requested -q)) and each exec host's whole C(mem_requested)
    (C(qconf -se HOST)), and plans what one pass of the autoscaler does - launch N nodes
    of a type, drain a host, remove a drained host, enable a drained host again - with
    the planning core of C(plugins/module_utils/autoscale.py).
  - Pending jobs are packed largest memory first onto the free capacity of the hosts,
    then onto nodes in flight, then onto new nodes of the cheapest (else smallest)
    instance type that fits. A job that fits no allowed type and no host is reported in
    RV(plan.unplaceable) and never causes a launch.
  - The module only plans. It carries nothing out; the caller does (disabling a queue
    with C(qmod -d), launching, removing), see C(playbooks/balance.yml).
  - Keeps what must outlive a pass in a JSON state file (O(state_path)) - since when
    each host has been idle, the hosts being drained and when each drain started, the
    hosts on a spot notice (O(noticed_hosts)) and when a pass first saw each, the nodes
    in flight - and appends one JSON line per pass to a monitor log (O(log_path)).
  - A host is drained only after it has been idle for O(policy.idle_minutes) in the
    module's own bookkeeping; the first pass that sees a host idle starts its clock.
    A host a pass plans to drain is recorded as draining in the state file at once, on
    the assumption that the caller disables its queue right after; a recorded drain
    whose host shows no C(d) queue state in a later pass is forgotten (the host counts
    as usable again), so a drain that was never carried out is harmless.
  - Every option is checked before any command runs; a failure names the option, the
    value at fault and what is allowed.
options:
  policy:
    description: Bounds of one pass; each bound left out takes its default.
    type: dict
    suboptions:
      min_nodes:
        description:
          - Fewest compute nodes to keep. Compute nodes are the usable exec hosts, the
            hosts being drained and the nodes in flight, but not the O(fixed_hosts).
          - A whole number of at least 0.
        type: int
        default: 0
      max_nodes:
        description:
          - Most compute nodes. Launches that would exceed it are held back, and the jobs
            that needed them are reported as waiting.
          - A whole number of at least O(policy.min_nodes).
        type: int
        default: 10
      idle_minutes:
        description:
          - How long a compute host must have run no job before it is drained. EC2 bills
            per second, so a few minutes is enough.
          - A number of at least 0.
        type: float
        default: 10
      max_launch_per_pass:
        description: Most nodes launched in one pass; a whole number of at least 0.
        type: int
        default: 10
      mem_reserve:
        description:
          - What C(roles/sge) keeps back of each node's memory for the system
            (C(sge_mem_reserve)). A node of a type offers its memory minus this as
            C(mem_requested).
          - An SGE memory value such as V(512M) or V(1G).
        type: str
        default: 512M
      drain_settle_seconds:
        description:
          - How long a drained host stays disabled, and idle, before a pass removes it.
            Longer than Grid Engine's scheduling interval, so a job dispatched as the
            queue was disabled is seen running (the host is then enabled again) before
            the host is removed; the pass that finds it idle after this time plans the
            removal.
          - A number of seconds of at least 0.
        type: float
        default: 30
  instance_types:
    description:
      - The instance types the autoscaler may launch, name -> C({vcpus, memory_mib,
        price}). V(vcpus) (a whole number of at least 1) becomes the node's slots;
        V(memory_mib) (a whole number of at least 1) minus O(policy.mem_reserve) its
        C(mem_requested); V(price) (optional, a number of at least 0, per hour) picks the
        cheapest fitting type when every fitting type has one, else the smallest
        fitting type is taken.
      - At least one type.
    type: dict
    required: true
  fixed_hosts:
    description:
      - Exec hosts that are not compute nodes (a master that runs jobs, a login host).
        They take jobs but are never drained nor counted against O(policy.min_nodes) or
        O(policy.max_nodes).
      - The qmaster host (C(SGE_ROOT/SGE_CELL/common/act_qmaster)) is always fixed, so the
        master is never drained.
    type: list
    elements: str
    default: []
  gone_hosts:
    description:
      - Exec hosts the caller knows are gone (no running container or instance, after a spot
        interruption, a killed node), which Grid Engine may still count as alive for up
        to C(max_unheard). They are left out of the plan at once, so no pending job is
        placed on them, and listed in RV(lost_hosts).
      - Names Grid Engine does not list are ignored.
    type: list
    elements: str
    default: []
  noticed_hosts:
    description:
      - Exec hosts whose spot watcher (C(roles/sge), C(segway_spot_watch.py)) has handled
        an EC2 notice - a spot interruption or a rebalance recommendation - and so
        disabled their queue (C(qmod -d)) and rescheduled their jobs (C(qmod -rq)); that
        is, hosts whose watcher state file (C(/var/lib/segway-spot-watch/state.json))
        lists a handled notice. C(playbooks/balance.yml) reads those files.
      - While such a host's queue shows state C(d), the pass treats it as a host it
        drains itself, except that it is never enabled again. Its capacity takes no
        pending job (a node is launched for them if they need it); a job still running
        there (one without the rerun flag) keeps it; once it runs no job, it is removed
        (RV(plan.actions) C(remove) with C(reason) V(spot notice)) without waiting
        O(policy.idle_minutes) - in the first pass O(policy.drain_settle_seconds) after
        the pass that first saw the notice, the watcher's C(qmod -d) being the drain.
        It counts as a compute node until removed, but O(policy.min_nodes) never keeps
        it.
      - A pass remembers a noticed host in the state file until its queue is no longer
        disabled (someone ran C(qmod -e)) or Grid Engine no longer lists it, so a node
        that does not answer in a later pass stays noticed.
      - A disabled host with no notice (disabled by an admin) stays excluded and is
        never removed. A name matches an exec host of that name, or whose name without
        its domain is that name; names Grid Engine does not list, fixed hosts and
        O(gone_hosts) are ignored.
    type: list
    elements: str
    default: []
  default_memory:
    description:
      - The C(mem_requested) of a job that requests none, per slot; the default of the
        C(mem_requested) complex (V(0) in C(roles/sge); its C(sge_request) gives every
        job a request anyway).
      - An SGE memory value such as V(0), V(2G) or V(500M).
    type: str
    default: "0"
  count_rescheduled:
    description:
      - Count rescheduled jobs (state C(Rq)) as pending, as well as plain C(qw) ones.
      - When a node is lost (its instance or container is gone, a spot interruption),
        Grid Engine reschedules its rerunnable jobs and they wait as C(Rq). They need
        capacity as much as a new job does; leaving them out would mean a lost node's
        work never asks for a replacement, and Segway, which gives a failed job one
        retry only, would wait for the rest of the cluster.
      - Held (C(hqw)) and error (C(Eqw)) jobs are never counted, as more nodes would not
        start them.
    type: bool
    default: true
  in_flight:
    description:
      - Nodes being launched that are not exec hosts yet, each a name or a dict
        C({name, instance_type}); a bare name takes the one instance type of
        O(instance_types) (and is refused when there are several). A node in flight
        counts as a compute node and its capacity takes pending jobs before a new node
        is launched for them.
      - When given (even as V([])), it replaces the nodes in flight of the state file;
        when not given, the state file's are used. Either way a node drops out once
        qhost lists it as a usable host.
    type: list
    elements: raw
  state_path:
    description:
      - The JSON state file kept between passes (idle times, drains, nodes in flight).
        Its directory is created if missing.
      - A file that is not such a state file fails the module rather than being
        replaced, because forgetting a drain would leave that host disabled.
    type: path
    default: /var/lib/segway-autoscale/state.json
  log_path:
    description:
      - The monitor log, one JSON object per line and per pass (see RV(log_record)).
        Its directory is created if missing.
    type: path
    default: /var/log/segway-autoscale.log
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - segway.cluster.sge
attributes:
  check_mode:
    support: full
    details:
      - The plan is computed and returned; neither the state file nor the log is
        written.
  diff_mode:
    support: full
    details: The diff shows the state file before and after the pass.
  platform:
    platforms: posix
requirements:
  - The Grid Engine client (C(qstat), C(qhost), C(qconf)) on the target, the master.
  - Read access to Grid Engine (any user may run C(qstat) and C(qhost)); write access
    to O(state_path) and O(log_path) (root, with the defaults).
notes:
  - C(changed) is true exactly when the state file and the log were written, that is
    in every pass out of check mode (each pass appends its line to the log).
  - Hosts that are lost (no load report, or queue state C(u)) or gone (O(gone_hosts))
    are left out of the plan and listed in RV(lost_hosts) for the caller.
  - Hosts on a spot notice (O(noticed_hosts)) are named in RV(plan.noticed_hosts),
    RV(log_record) and RV(summary), after the number of hosts draining, which counts
    them.
seealso:
  - name: qstat(1)
    description: The pending job list the module reads.
    link: https://manpages.debian.org/bookworm/gridengine-client/qstat.1.en.html
  - name: qhost(1)
    description: The host list the module reads.
    link: https://manpages.debian.org/bookworm/gridengine-client/qhost.1.en.html
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan a pass for up to 8 m7i.xlarge compute nodes, keeping one
  segway.cluster.sge_autoscale:
    policy:
      min_nodes: 1
      max_nodes: 8
      idle_minutes: 5
    instance_types:
      m7i.xlarge: {vcpus: 4, memory_mib: 16384, price: 0.2016}
  register: autoscale_pass

- name: Mixed types; the cheapest that fits each new node is launched
  segway.cluster.sge_autoscale:
    instance_types:
      m7i.xlarge: {vcpus: 4, memory_mib: 16384, price: 0.2016}
      r7i.xlarge: {vcpus: 4, memory_mib: 32768, price: 0.2646}
    in_flight:
      - {name: node005, instance_type: r7i.xlarge}

- name: A pass that removes node004 once it runs no job (its spot watcher handled a notice)
  segway.cluster.sge_autoscale:
    instance_types:
      m7i.xlarge: {vcpus: 4, memory_mib: 16384, price: 0.2016}
    noticed_hosts: [node004]

- name: Show what a pass would do, changing nothing
  segway.cluster.sge_autoscale:
    instance_types:
      local: {vcpus: 2, memory_mib: 8192}
    state_path: /tmp/autoscale/state.json
    log_path: /tmp/autoscale/autoscale.log
  check_mode: true
  diff: true
  register: autoscale_plan

- name: Print the plan
  ansible.builtin.debug:
    msg: "{{ autoscale_plan.summary }}"
"""

RETURN = r"""
plan:
  description: What the pass plans (autoscale.Plan.to_dict()).
  returned: always
  type: dict
  contains:
    time:
      description: The time of the pass, UTC, ISO 8601.
      type: str
      sample: "2027-01-15T08:00:00Z"
    now:
      description: The time of the pass in seconds since the epoch.
      type: float
    actions:
      description:
        - "In order: C(launch) (C(count), C(instance_type)), C(enable) (C(host), C(reason)),
          C(remove) (C(host); C(reason) V(spot notice) for a host on a spot notice),
          C(drain) (C(host)); each a dict whose C(action) names it."
      type: list
      elements: dict
      sample: [{action: launch, count: 2, instance_type: m7i.xlarge}]
    placements:
      description: Where each pending job is expected to run (C({job, target, kind})).
      type: list
      elements: dict
    waiting:
      description: Jobs that fit some type but were held back by the caps, or wait for jobs to end.
      type: list
      elements: dict
    unplaceable:
      description: Jobs that fit no allowed type and no usable host; they launch nothing.
      type: list
      elements: dict
      sample: [{job: "24", name: too_big_64G, owner: sgetest, slots: 1,
                memory: 68719476736, pe: null,
                reason: larger than every allowed instance type and every usable host}]
    excluded_hosts:
      description: Hosts left out of the plan, and why (C({host, reason})).
      type: list
      elements: dict
    noticed_hosts:
      description:
        - Hosts on a spot notice (O(noticed_hosts)) in this pass, busy or idle; each is
          removed, once it runs no job, by a C(remove) action whose C(reason) is
          V(spot notice).
      type: list
      elements: str
    counts:
      description: Pending jobs, slots and memory (bytes), free slots and memory, hosts by state.
      type: dict
    summary:
      description: The same as RV(summary).
      type: str
summary:
  description: The pass in one line (time, pending work, free capacity, hosts, actions).
  returned: always
  type: str
  sample: >-
    2027-01-15T08:00:00Z pending 6 jobs (6 slots, 36G; 0 waiting, 0 unplaceable); free 2
    slots, 3G; hosts 1 usable, 0 draining, 1 excluded, 0 in flight; actions: launch 2 x
    m7i.xlarge
pending:
  description: The pending job list as read.
  returned: always
  type: dict
  contains:
    jobs:
      description: Job instances counted (array tasks one by one).
      type: int
    slots:
      description: Their slots.
      type: int
    memory:
      description: Their C(mem_requested), bytes.
      type: int
    skipped:
      description:
        - qstat entries not counted (held, error, ...), each C({job, tasks, state, reason}).
      type: list
      elements: dict
hosts:
  description: The exec hosts as read.
  returned: always
  type: dict
  contains:
    listed:
      description: Exec hosts qhost lists.
      type: int
    usable:
      description: Hosts that can take jobs.
      type: int
    draining:
      description: Hosts being drained, those on a spot notice included.
      type: int
    noticed:
      description: Hosts on a spot notice (O(noticed_hosts)) in this pass.
      type: list
      elements: str
    excluded:
      description: Hosts left out (lost, disabled, in error, ...).
      type: int
    idle:
      description: Usable or draining hosts that run no job.
      type: int
    fixed:
      description: The fixed hosts (the qmaster host and O(fixed_hosts)).
      type: list
      elements: str
lost_hosts:
  description:
    - Exec hosts with no load report or in queue state C(u), and the O(gone_hosts) Grid
      Engine lists, for the caller's lost-node handling.
  returned: always
  type: list
  elements: str
state:
  description:
    - The state after the pass, as written to O(state_path) (would be, in check mode).
    - C(idle_since) maps host -> epoch seconds; C(draining) host -> epoch seconds the
      drain started; C(noticed) host -> epoch seconds a pass first saw its spot notice;
      C(in_flight) node -> C({instance_type, since}).
  returned: always
  type: dict
  sample:
    version: 1
    updated: 1800000000.0
    idle_since: {node003: 1799999400.0}
    draining: {node004: 1799999700.0}
    noticed: {node005: 1799999940.0}
    in_flight: {}
log_record:
  description:
    - The line appended to O(log_path) (would be, in check mode), as a dict.
    - C(time), C(now), C(pending_jobs), C(pending_slots), C(pending_memory),
      C(free_slots), C(free_memory), C(slots_total), C(slots_used), C(nodes) (hosts by
      state; C(draining) includes C(noticed)), C(noticed_hosts) (the hosts on a spot
      notice), C(waiting), C(unplaceable), C(actions), C(summary). Memory in bytes.
  returned: always
  type: dict
"""

import glob  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.autoscale import (  # noqa: E402
    PENDING_STATES,
    Drain,
    Enable,
    Host,
    InFlight,
    InstanceType,
    Policy,
    host_problem,
    natural_key,
    parse_hosts,
    parse_memory,
    parse_pending_jobs,
    plan_pass,
    unreachable_hosts,
)
from ansible_collections.segway.cluster.plugins.module_utils.sge import (  # noqa: E402
    Qconf,
    QconfError,
    classify_failure,
    sge_argument_spec,
)

STATE_VERSION = 1
RESCHEDULED_STATES = frozenset({*PENDING_STATES, "Rq"})
TYPE_KEYS = ("vcpus", "memory_mib", "price")
GONE = "gone: no running container or instance"

ARGUMENT_SPEC = {
    "policy": {
        "type": "dict",
        "apply_defaults": True,
        "options": {
            "min_nodes": {"type": "int", "default": 0},
            "max_nodes": {"type": "int", "default": 10},
            "idle_minutes": {"type": "float", "default": 10},
            "max_launch_per_pass": {"type": "int", "default": 10, "no_log": False},
            "mem_reserve": {"type": "str", "default": "512M"},
            "drain_settle_seconds": {"type": "float", "default": 30.0},
        },
    },
    "instance_types": {"type": "dict", "required": True},
    "fixed_hosts": {"type": "list", "elements": "str", "default": []},
    "gone_hosts": {"type": "list", "elements": "str", "default": []},
    "noticed_hosts": {"type": "list", "elements": "str", "default": []},
    "default_memory": {"type": "str", "default": "0"},
    "count_rescheduled": {"type": "bool", "default": True},
    "in_flight": {"type": "list", "elements": "raw"},
    "state_path": {"type": "path", "default": "/var/lib/segway-autoscale/state.json"},
    "log_path": {"type": "path", "default": "/var/log/segway-autoscale.log"},
    **sge_argument_spec(),
}


class PassError(Exception):
    """The pass cannot be planned; nothing has been written."""


# --------------------------------------------------------------------------- inputs


def whole_number(value: object) -> int | None:
    """`value` as an int if it is a whole number (an int, or digits as text), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def number(value: object) -> float | None:
    """`value` as a finite float (a number, or a number as text), else None."""
    if isinstance(value, bool):
        return None
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def policy_errors(policy: dict) -> list[str]:
    """Problems with the policy option, each naming the sub-option, value and range."""
    errors = []
    min_nodes, max_nodes = policy["min_nodes"], policy["max_nodes"]
    if min_nodes < 0:
        errors.append(f"policy.min_nodes={min_nodes} is not allowed: use a whole number >= 0")
    if max_nodes < max(min_nodes, 0):
        errors.append(
            f"policy.max_nodes={max_nodes} is not allowed: use a whole number >= "
            f"policy.min_nodes ({min_nodes})"
        )
    if policy["max_launch_per_pass"] < 0:
        errors.append(
            f"policy.max_launch_per_pass={policy['max_launch_per_pass']} is not allowed: "
            "use a whole number >= 0"
        )
    idle = policy["idle_minutes"]
    if not math.isfinite(idle) or idle < 0:
        errors.append(f"policy.idle_minutes={idle} is not allowed: use a number of minutes >= 0")
    settle = policy["drain_settle_seconds"]
    if not math.isfinite(settle) or settle < 0:
        errors.append(
            f"policy.drain_settle_seconds={settle} is not allowed: use a number of seconds >= 0"
        )
    try:
        parse_memory(policy["mem_reserve"])
    except ValueError:
        errors.append(
            f"policy.mem_reserve={policy['mem_reserve']!r} is not allowed: use an SGE "
            "memory value such as 512M or 1G"
        )
    return errors


def read_instance_types(raw: dict) -> tuple[dict[str, InstanceType], list[str]]:
    """The instance_types option as InstanceTypes, and its problems."""
    types: dict[str, InstanceType] = {}
    errors: list[str] = []
    if not raw:
        return types, [
            "instance_types={} is not allowed: name at least one type, e.g. "
            "{m7i.xlarge: {vcpus: 4, memory_mib: 16384}}"
        ]
    for name, spec in raw.items():
        where = f"instance_types[{name}]"
        if not isinstance(name, str) or not name.strip():
            errors.append(f"instance_types has a type named {name!r}: use a non-empty name")
            continue
        if not isinstance(spec, dict):
            errors.append(
                f"{where}={spec!r} is not allowed: use a dict {{vcpus, memory_mib, price}}"
            )
            continue
        unknown = sorted(str(key) for key in spec if key not in TYPE_KEYS)
        if unknown:
            errors.append(
                f"{where} has unknown key(s) {', '.join(unknown)}: allowed are "
                f"{', '.join(TYPE_KEYS)}"
            )
        vcpus = whole_number(spec.get("vcpus"))
        if vcpus is None or vcpus < 1:
            errors.append(
                f"{where}.vcpus={spec.get('vcpus')!r} is not allowed: use a whole number >= 1"
            )
        memory = whole_number(spec.get("memory_mib"))
        if memory is None or memory < 1:
            errors.append(
                f"{where}.memory_mib={spec.get('memory_mib')!r} is not allowed: use a whole "
                "number of MiB >= 1"
            )
        price = None
        if spec.get("price") is not None:
            price = number(spec["price"])
            if price is None or price < 0:
                errors.append(
                    f"{where}.price={spec['price']!r} is not allowed: use a number >= 0 "
                    "(per hour), or leave it out"
                )
        if vcpus and memory and vcpus >= 1 and memory >= 1:
            types[name] = InstanceType(name, vcpus, memory, price)
    return types, errors


def read_in_flight(raw: list | None, types: dict[str, InstanceType]) -> tuple[list, list[str]]:
    """The in_flight option as [(name, instance_type)], and its problems."""
    nodes: list[tuple[str, str]] = []
    errors: list[str] = []
    allowed = ", ".join(sorted(types)) or "(none)"
    for index, item in enumerate(raw or []):
        where = f"in_flight[{index}]"
        if isinstance(item, str):
            name, kind = item.strip(), None
        elif isinstance(item, dict):
            unknown = sorted(str(key) for key in item if key not in ("name", "instance_type"))
            if unknown:
                errors.append(
                    f"{where} has unknown key(s) {', '.join(unknown)}: allowed are name, "
                    "instance_type"
                )
            name = str(item.get("name") or "").strip()
            kind = item.get("instance_type")
        else:
            errors.append(
                f"{where}={item!r} is not allowed: use a node name or {{name, instance_type}}"
            )
            continue
        if not name:
            errors.append(f"{where}={item!r} has no node name")
            continue
        if kind is None:
            if len(types) != 1:
                errors.append(
                    f"{where}={name!r} needs an instance_type: instance_types has "
                    f"{len(types)} types ({allowed})"
                )
                continue
            kind = next(iter(types))
        if kind not in types:
            errors.append(f"{where}.instance_type={kind!r} is not one of instance_types: {allowed}")
            continue
        nodes.append((name, str(kind)))
    return nodes, errors


def request_errors(params: dict) -> list[str]:
    """Everything wrong with the options alone, before any command runs."""
    errors = policy_errors(params["policy"])
    types, type_errors = read_instance_types(params["instance_types"] or {})
    errors.extend(type_errors)
    try:
        parse_memory(params["default_memory"])
    except ValueError:
        errors.append(
            f"default_memory={params['default_memory']!r} is not allowed: use an SGE "
            "memory value such as 0, 2G or 500M"
        )
    if not type_errors:
        errors.extend(read_in_flight(params["in_flight"], types)[1])
    for index, name in enumerate(params["noticed_hosts"] or []):
        if not name.strip():
            errors.append(f"noticed_hosts[{index}]={name!r} is not allowed: use a host name")
    for option in ("state_path", "log_path"):
        path = params[option]
        if not path or not os.path.isabs(path):
            errors.append(f"{option}={path!r} is not allowed: use an absolute path")
        elif os.path.isdir(path):
            errors.append(f"{option}={path!r} is a directory: use the path of a file")
    if params["state_path"] and params["state_path"] == params["log_path"]:
        errors.append(f"state_path and log_path are both {params['state_path']!r}: use two files")
    return errors


# --------------------------------------------------------------------------- state


def empty_state() -> dict:
    return {
        "version": STATE_VERSION,
        "idle_since": {},
        "draining": {},
        "noticed": {},
        "in_flight": {},
    }


def read_state(path: str) -> tuple[dict, str]:
    """The state file as a dict (empty if absent) and its text; PassError if unreadable."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        return empty_state(), ""
    except OSError as error:
        raise PassError(f"cannot read state_path={path!r}: {error.strerror}") from error
    try:
        state = json.loads(text)
        problem = state_problem(state)
    except ValueError as error:
        problem = f"not JSON ({error})"
    if problem:
        raise PassError(
            f"state_path={path!r} is not an autoscaler state file: {problem}. Fix or delete "
            "it; deleting it forgets idle times, drains and nodes in flight (a host disabled "
            "by a drain then stays disabled until `qmod -e`)"
        )
    state = {**empty_state(), **state}
    return state, text


def state_problem(state: object) -> str | None:
    """Why `state` is not a state file this module wrote, or None."""
    if not isinstance(state, dict):
        return "not a JSON object"
    if state.get("version", STATE_VERSION) != STATE_VERSION:
        return f"version {state.get('version')!r}, expected {STATE_VERSION}"
    for key in ("idle_since", "draining", "noticed"):
        value = state.get(key, {})
        if not isinstance(value, dict) or any(number(v) is None for v in value.values()):
            return f"{key} is not a map of host -> epoch seconds"
    nodes = state.get("in_flight", {})
    if not isinstance(nodes, dict) or any(
        not isinstance(entry, dict) or not isinstance(entry.get("instance_type"), str)
        for entry in nodes.values()
    ):
        return "in_flight is not a map of node -> {instance_type, since}"
    return None


def state_text(state: dict) -> str:
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def append_line(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, sort_keys=True) + "\n")


def usable_or_draining(host: Host, draining: dict) -> bool:
    if host.name in draining:
        return host_problem(host, ignore="d") is None
    return host.problem is None


def short_name(name: str) -> str:
    return name.split(".", 1)[0]


def prune_noticed(
    hosts: list[Host],
    named: list[str],
    recorded: dict,
    excluded: set[str],
    now: float,
) -> dict[str, float]:
    """Hosts on a spot notice, with when a pass first saw each: those `named` now (by
    name, or by name without domain) and those `recorded` in the state, while Grid
    Engine lists them with a disabled queue ('d'); `excluded` (gone, fixed) never."""
    wanted = {name.strip() for name in named} | {short_name(name.strip()) for name in named}
    result = {}
    for host in sorted(hosts, key=lambda host: natural_key(host.name)):
        if host.name in excluded or "d" not in host.states:
            continue
        if host.name in recorded or host.name in wanted or short_name(host.name) in wanted:
            result[host.name] = float(recorded.get(host.name, now))
    return result


def prune_draining(hosts: list[Host], draining: dict) -> dict[str, float]:
    """Recorded drains still in effect: the host is listed and its queue shows 'd'."""
    by_name = {host.name: host for host in hosts}
    return {
        name: float(started)
        for name, started in draining.items()
        if name in by_name and "d" in by_name[name].states
    }


def idle_bookkeeping(
    old: dict, hosts: list[Host], draining: dict[str, float], now: float
) -> dict[str, float]:
    """Since when each host has run no job: kept for hosts still idle, `now` for newly
    idle ones; busy, lost and unlisted hosts have no entry."""
    return {
        host.name: float(old.get(host.name, now))
        for host in sorted(hosts, key=lambda host: host.name)
        if host.idle and usable_or_draining(host, draining)
    }


def next_state(
    idle_since: dict[str, float],
    *,
    hosts: list[Host],
    draining: dict[str, float],
    noticed: dict[str, float] | None = None,
    in_flight: list[tuple[str, str]],
    in_flight_since: dict[str, float],
    actions: tuple,
    now: float,
) -> dict:
    """The state after a pass that planned `actions`."""
    drains = dict(draining)
    for action in actions:
        if isinstance(action, Enable):
            drains.pop(action.host, None)
        elif isinstance(action, Drain):
            drains[action.host] = now
    usable = {host.name for host in hosts if host.problem is None}
    nodes = {
        name: {"instance_type": kind, "since": in_flight_since.get(name, now)}
        for name, kind in in_flight
        if name not in usable
    }
    return {
        "version": STATE_VERSION,
        "updated": now,
        "idle_since": idle_since,
        "draining": dict(sorted(drains.items())),
        "noticed": dict(sorted((noticed or {}).items())),
        "in_flight": dict(sorted(nodes.items())),
    }


# --------------------------------------------------------------------------- Grid Engine


def find_binary(module: AnsibleModule, sge_root: str, name: str) -> str:
    """$SGE_ROOT/bin/<arch>/NAME, else any $SGE_ROOT/bin/*/NAME, else NAME on PATH."""
    arch = None
    script = os.path.join(sge_root, "util", "arch")
    if os.access(script, os.X_OK):
        rc, out, _err = module.run_command([script])
        arch = out.strip() if rc == 0 and out.strip() else None
    candidates = [os.path.join(sge_root, "bin", arch, name)] if arch else []
    candidates.extend(sorted(glob.glob(os.path.join(sge_root, "bin", "*", name))))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = module.get_bin_path(name)
    if not found:
        raise PassError(
            f"{name} not found: not in {sge_root}/bin/<arch>/ (sge_root={sge_root!r}) nor on "
            "PATH; install the Grid Engine client (Debian: gridengine-client) or set sge_root"
        )
    return found


class GridEngine:
    """Runs qstat, qhost and qconf for one SGE root and cell."""

    def __init__(self, module: AnsibleModule, sge_root: str, sge_cell: str) -> None:
        self.module = module
        self.sge_root = sge_root
        self.sge_cell = sge_cell
        common = os.path.join(sge_root, sge_cell, "common")
        self.act_qmaster = os.path.join(common, "act_qmaster")
        if not os.path.isfile(self.act_qmaster):
            raise PassError(
                f"no Grid Engine cell {sge_cell!r} under sge_root={sge_root!r}: "
                f"{self.act_qmaster} does not exist; set sge_root and sge_cell (or SGE_ROOT "
                "and SGE_CELL)"
            )
        self.binaries = {name: find_binary(module, sge_root, name) for name in ("qstat", "qhost")}
        self.qconf = Qconf(
            module.run_command, find_binary(module, sge_root, "qconf"), sge_root, sge_cell
        )

    def master(self) -> str | None:
        try:
            with open(self.act_qmaster, encoding="utf-8") as stream:
                return stream.read().strip() or None
        except OSError:
            return None

    def run(self, name: str, *args: str) -> str:
        rc, out, err = self.module.run_command(
            [self.binaries[name], *args],
            environ_update={"SGE_ROOT": self.sge_root, "SGE_CELL": self.sge_cell},
        )
        if rc != 0:
            output = "\n".join(part.strip() for part in (err, out) if part and part.strip())
            command = " ".join([name, *args])
            if classify_failure(output) == "unreachable":
                raise PassError(
                    f"sge_qmaster on {self.master()!r} is unreachable (SGE_ROOT="
                    f"{self.sge_root}, SGE_CELL={self.sge_cell}); is it running? `{command}` "
                    f"failed (rc={rc}): {output}"
                )
            raise PassError(f"`{command}` failed (rc={rc}): {output}")
        return out

    def pending_xml(self) -> str:
        return self.run("qstat", "-xml", "-r", "-s", "p", "-u", "*")

    def hosts_xml(self) -> str:
        return self.run("qhost", "-xml", "-F", "mem_requested", "-q")

    def capacities(self, names: list[str]) -> dict[str, str]:
        """Each exec host's whole mem_requested (its complex_values), where it has one."""
        result = {}
        for name in names:
            try:
                value = self.qconf.host_complex_values(name).get("mem_requested")
            except (QconfError, ValueError):
                continue  # a host qconf cannot show is judged by qhost alone
            if value:
                result[name] = value
        return result


# --------------------------------------------------------------------------- the pass


def log_record(plan: dict, hosts: list[Host], fixed: set[str]) -> dict:
    """The monitor line of a pass: what status.yml and the plot read back.

    Hosts on a spot notice count as draining (nodes.draining) and are named in
    noticed_hosts, so a reader sees why they went (their removal's reason too)."""
    counts = plan["counts"]
    usable = [host for host in hosts if host.problem is None]
    compute = [host for host in usable if host.name not in fixed]
    return {
        "time": plan["time"],
        "now": plan["now"],
        "pending_jobs": counts["pending_jobs"],
        "pending_slots": counts["pending_slots"],
        "pending_memory": counts["pending_memory"],
        "free_slots": counts["free_slots"],
        "free_memory": counts["free_memory"],
        "slots_total": sum(host.slots for host in usable),
        "slots_used": sum(host.slots_used + host.slots_reserved for host in usable),
        "nodes": {
            "listed": len(hosts),
            "busy": sum(1 for host in compute if not host.idle),
            "idle": sum(1 for host in compute if host.idle),
            "fixed": sum(1 for host in usable if host.name in fixed),
            "draining": counts["hosts_draining"],
            "noticed": counts["hosts_noticed"],
            "excluded": counts["hosts_excluded"],
            "in_flight": counts["in_flight"],
            "new": counts["new_nodes"],
        },
        "noticed_hosts": plan["noticed_hosts"],
        "waiting": counts["waiting"],
        "unplaceable": counts["unplaceable"],
        "actions": plan["actions"],
        "summary": plan["summary"],
    }


def run_pass(params: dict, grid: GridEngine, check_mode: bool, now: float) -> dict:
    """One pass: read Grid Engine and the state, plan, and (out of check mode) write."""
    policy_in = params["policy"]
    policy = Policy(
        min_nodes=policy_in["min_nodes"],
        max_nodes=policy_in["max_nodes"],
        idle_seconds=policy_in["idle_minutes"] * 60,
        max_launch_per_pass=policy_in["max_launch_per_pass"],
        mem_reserve=policy_in["mem_reserve"],
        drain_settle_seconds=policy_in["drain_settle_seconds"],
    )
    errors = policy.errors()
    if errors:  # policy_errors() caught these already; kept in step with the core
        raise PassError("; ".join(errors))
    types, _errors = read_instance_types(params["instance_types"])
    state, before_text = read_state(params["state_path"])

    states = RESCHEDULED_STATES if params["count_rescheduled"] else PENDING_STATES
    pending_text = grid.pending_xml()
    hosts_text = grid.hosts_xml()
    try:
        pending = parse_pending_jobs(pending_text, params["default_memory"], states=states)
        names = [host.name for host in parse_hosts(hosts_text)]
        hosts = parse_hosts(hosts_text, capacities=grid.capacities(names))
        lost = unreachable_hosts(hosts_text)
    except (ValueError, SyntaxError) as error:  # ET.ParseError is a SyntaxError
        raise PassError(f"cannot read the output of qstat/qhost: {error}") from error

    gone = set(params["gone_hosts"]) & set(names)
    hosts = [replace(host, problem=GONE) if host.name in gone else host for host in hosts]
    lost = sorted(set(lost) | gone, key=natural_key)
    fixed = set(params["fixed_hosts"])
    master = grid.master()
    if master:
        fixed.add(master)
    draining = prune_draining(hosts, state["draining"])
    noticed = prune_noticed(hosts, params["noticed_hosts"], state["noticed"], fixed | gone, now)
    if params["in_flight"] is not None:
        in_flight = read_in_flight(params["in_flight"], types)[0]
    else:
        in_flight = [(name, entry["instance_type"]) for name, entry in state["in_flight"].items()]
    # A node in flight whose type is no longer allowed still counts, with no capacity.
    since = {name: float(entry.get("since", now)) for name, entry in state["in_flight"].items()}
    idle_since = idle_bookkeeping(state["idle_since"], hosts, draining, now)
    plan = plan_pass(
        pending.jobs,
        hosts,
        types,
        policy,
        now=now,
        idle_since=idle_since,
        in_flight=[InFlight(name, kind) for name, kind in in_flight],
        draining=set(draining),
        fixed_hosts=fixed,
        # A noticed host's drain (the watcher's qmod -d) settles from the pass that first
        # saw it: the watcher's clock is another machine's.
        drain_started={**draining, **noticed},
        noticed=set(noticed),
    )
    new_state = next_state(
        idle_since,
        hosts=hosts,
        draining=draining,
        noticed=noticed,
        in_flight=in_flight,
        in_flight_since=since,
        actions=plan.actions,
        now=now,
    )
    plan_dict = plan.to_dict()
    record = log_record(plan_dict, hosts, fixed)
    after_text = state_text(new_state)
    if not check_mode:
        write_atomically(params["state_path"], after_text)
        append_line(params["log_path"], record)
    usable = [host for host in hosts if usable_or_draining(host, {**draining, **noticed})]
    return {
        "changed": not check_mode,
        "plan": plan_dict,
        "summary": plan.summary,
        "pending": {
            "jobs": len(pending.jobs),
            "slots": sum(job.slots for job in pending.jobs),
            "memory": sum(job.memory for job in pending.jobs),
            "skipped": [job.to_dict() for job in pending.skipped],
        },
        "hosts": {
            "listed": len(hosts),
            "usable": plan.counts["hosts_usable"],
            "draining": plan.counts["hosts_draining"],
            "excluded": plan.counts["hosts_excluded"],
            "noticed": list(plan.noticed_hosts),
            "idle": sum(1 for host in usable if host.idle),
            "fixed": sorted(fixed),
        },
        "lost_hosts": lost,
        "state": new_state,
        "log_record": record,
        "diff": {
            "before": before_text,
            "after": after_text,
            "before_header": params["state_path"],
            "after_header": params["state_path"],
        },
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    errors = request_errors(params)
    if errors:
        module.fail_json(msg="; ".join(errors), errors=errors)
    try:
        grid = GridEngine(module, params["sge_root"], params["sge_cell"])
        result = run_pass(params, grid, module.check_mode, time.time())
    except PassError as error:
        module.fail_json(msg=str(error))
    except OSError as error:
        module.fail_json(msg=f"cannot write the state or the log: {error}")
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
