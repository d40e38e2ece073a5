# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning core of Segway's autoscaler: what one pass launches, drains, removes or enables.

Everything here is pure. It reads the XML that Son of Grid Engine 8.1.9 prints for
``qstat -xml -r -s p -u '*'`` (pending jobs) and ``qhost -xml -F mem_requested -q``
(exec hosts, their queue instances and the free amount of the ``mem_requested``
consumable), and turns them, with the nodes the caller is launching or draining, the
hosts a spot watcher took out on an EC2 notice and its policy, into a ``Plan``. The caller
runs the commands, keeps the clock and the idle-since times, and carries the plan out; so
one pass can be replayed from its inputs, and unit tests drive it with XML recorded from
a real qmaster (tests/unit/fixtures/sge_autoscale).

Memory is counted in bytes (ints) throughout, as SGE counts a MEMORY consumable; instance
types give theirs in MiB, as EC2 does.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

MIB = 1024**2

# The consumable that Segway's jobs request and every exec host offers (roles/sge).
MEMORY_RESOURCE = "mem_requested"
# What roles/sge keeps back on each host: mem_requested = physical memory - this
# (sge_mem_reserve in roles/sge/defaults/main.yml).
DEFAULT_MEM_RESERVE = "512M"
# The default of the mem_requested complex (roles/sge/tasks/master.yml): what a job that
# asks for nothing consumes. roles/sge's sge_request adds -l mem_requested=2G to every
# job, so qstat normally shows a request; the caller passes the complex's default in.
DEFAULT_JOB_MEMORY = "0"
# Job states that wait only for a free slot. Everything else (hqw, hRwq, Eqw, ...) waits
# for a person or another job, and more nodes would not start it.
PENDING_STATES = frozenset({"qw"})

# SGE memory multipliers (sge_types(1)): lower case powers of 1000, upper case of 1024.
MULTIPLIERS: dict[str, int] = {
    "k": 1000,
    "K": 1024,
    "m": 1000**2,
    "M": 1024**2,
    "g": 1000**3,
    "G": 1024**3,
    "t": 1000**4,
    "T": 1024**4,
}
MEMORY_RE = re.compile(r"^(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?P<mult>[kKmMgGtT])?$")

# Queue instance states (qstat(1)) that keep the scheduler from starting jobs there, and
# the word each is reported as. 'a' (load alarm) is not among them: it passes when the
# load drops, and Segway's queue has no load thresholds.
BLOCKING_STATES: dict[str, str] = {
    "u": "unreachable",
    "E": "error",
    "d": "disabled",
    "D": "disabled by calendar",
    "o": "orphaned",
    "s": "suspended",
    "S": "suspended by subordination",
    "C": "suspended by calendar",
    "A": "suspend alarm",
    "c": "configuration ambiguous",
}
GLOBAL_HOST = "global"
# Why a host the spot watcher disabled (roles/sge, segway_spot_watch.py) is removed.
NOTICE_REASON = "spot notice"


# --------------------------------------------------------------------------- values


def parse_memory(value: str | float) -> int:
    """Bytes of an SGE memory value: `4G`, `500M`, `2.5G`, `1k`, plain bytes; ValueError else.

    Upper-case multipliers are powers of 1024 and lower-case ones powers of 1000, as in
    sge_types(1): `-l mem_requested=1g` asks for 10^9 bytes, `1G` for 2^30. qhost prints
    memory rounded to three decimals (`7.500G`), which rounds here to the nearest byte.
    """
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(value)
        return round(value)
    match = MEMORY_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not an SGE memory value such as 4G, 500M or 1024")
    return round(float(match.group("number")) * MULTIPLIERS.get(match.group("mult") or "", 1))


def format_memory(size: int) -> str:
    """`size` bytes as a short 1024-based figure for log lines: 512M, 2.5G, 0."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor:
            text = f"{size / factor:.1f}".removesuffix(".0")
            return f"{text}{unit}"
    return str(size)


def parse_task_ids(spec: str) -> list[int]:
    """Task ids of an array job's `<tasks>` text: `1-10:1`, `3,5,7`, `1-3:1,7-9:2`, `4`.

    qstat prints the still pending tasks of an array job in this form; each is one job
    instance for the scheduler, so each is one job here.
    """
    ids: list[int] = []
    for raw in spec.split(","):
        part = raw.strip()
        if not part:
            continue
        span, _sep, step_text = part.partition(":")
        first_text, dash, last_text = span.partition("-")
        first = int(first_text)
        last = int(last_text) if dash else first
        step = int(step_text) if step_text else 1
        if first < 1 or last < first or step < 1:
            raise ValueError(f"{spec!r} is not a task id range like 1-10:1 or 3,5,7")
        ids.extend(range(first, last + 1, step))
    return ids


def range_minimum(spec: str) -> int:
    """The smallest slot count of a PE range: `4` -> 4, `2-4` -> 2, `-8` -> 1, `2-4,8` -> 2.

    SGE may start a job with a range at its lower bound, so the lower bound is what
    the job needs to start.
    """
    lows = []
    for raw in spec.split(","):
        part = raw.strip()
        if not part:
            continue
        low = part.split("-", 1)[0].strip()
        lows.append(int(low) if low else 1)
    if not lows:
        raise ValueError(f"{spec!r} is not a slot range like 4 or 2-4")
    return min(lows)


def natural_key(name: str) -> tuple:
    """Sort key that puts node9 before node10."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name)
        if part
    )


def parse_xml(text: str) -> ET.Element:
    # The XML is what qstat/qhost printed on the master itself, not foreign input.
    return ET.fromstring(text)  # noqa: S314


# --------------------------------------------------------------------------- pending jobs


@dataclass(frozen=True)
class PendingJob:
    """One job instance waiting to start: a plain job, or one task of an array job.

    `memory` is what it takes of the mem_requested consumable on the host that runs it.
    """

    job_id: str
    task: int | None
    name: str
    owner: str
    slots: int
    mem_per_slot: int
    memory: int
    pe: str | None = None

    @property
    def label(self) -> str:
        """`123` or `123.4` (job.task), as qstat and qdel name a task."""
        return self.job_id if self.task is None else f"{self.job_id}.{self.task}"

    def to_dict(self) -> dict[str, object]:
        return {
            "job": self.label,
            "name": self.name,
            "owner": self.owner,
            "slots": self.slots,
            "memory": self.memory,
            "pe": self.pe,
        }


@dataclass(frozen=True)
class SkippedJob:
    """A pending qstat entry that more nodes would not start, and why."""

    job_id: str
    tasks: str
    state: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"job": self.job_id, "tasks": self.tasks, "state": self.state, "reason": self.reason}


@dataclass(frozen=True)
class PendingJobs:
    jobs: tuple[PendingJob, ...]
    skipped: tuple[SkippedJob, ...]


def skip_reason(state: str) -> str:
    if "E" in state:
        return "error state"
    if "h" in state:
        return "on hold"
    if "R" in state:
        return "rescheduled"
    return "not plainly waiting"


def parse_pending_jobs(
    text: str,
    default_memory: str | int = DEFAULT_JOB_MEMORY,
    resource: str = MEMORY_RESOURCE,
    job_consumable: bool = False,
    states: Collection[str] = PENDING_STATES,
) -> PendingJobs:
    """Job instances that wait for capacity, from `qstat -xml -r -s p -u '*'`.

    Only entries whose state is one of `states` (by default exactly ``qw``) count; the
    others are returned as skipped. A pending array job is one entry whose `<tasks>`
    lists the pending task ids (`2-5:1` once task 1 runs, `1,3,6,7` once tasks were
    deleted): each task is one job instance. A job's slots are the lower bound of its
    `-pe` range (else 1). Its `-l mem_requested=` request (`<hard_request
    name="mem_requested">`, printed as the user wrote it: 2.5G, 1g, 1073741824), or
    `default_memory` without one, counts per slot, as SGE charges a consumable=YES
    complex; `job_consumable=True` counts it once per job, as for consumable=JOB.

    A rescheduled job (a lost host's, with rerun) waits as ``Rq``: pass
    ``states={"qw", "Rq"}`` to count it.
    """
    default = parse_memory(default_memory)
    jobs: list[PendingJob] = []
    skipped: list[SkippedJob] = []
    for entry in parse_xml(text).iter("job_list"):
        job_id = entry.findtext("JB_job_number", "").strip()
        state = entry.findtext("state", "").strip()
        tasks_text = entry.findtext("tasks", "").strip()
        if state not in states:
            skipped.append(SkippedJob(job_id, tasks_text, state, skip_reason(state)))
            continue
        # qstat prints a PE request as <requested_pe name="smp">2-4</requested_pe>, and
        # <slots> as the range's lower bound; the range is read for itself all the same.
        pe_element = entry.find("requested_pe")
        if pe_element is not None:
            pe: str | None = pe_element.get("name")
            slots = range_minimum(pe_element.text or "")
        else:
            pe = None
            slots = int(entry.findtext("slots", "1").strip() or "1")
        mem_per_slot = default
        for request in entry.iter("hard_request"):
            if request.get("name") == resource:
                mem_per_slot = parse_memory(request.text or "")
        memory = mem_per_slot if job_consumable else mem_per_slot * slots
        tasks: list[int | None] = list(parse_task_ids(tasks_text)) if tasks_text else [None]
        jobs.extend(
            PendingJob(
                job_id=job_id,
                task=task,
                name=entry.findtext("JB_name", "").strip(),
                owner=entry.findtext("JB_owner", "").strip(),
                slots=slots,
                mem_per_slot=mem_per_slot,
                memory=memory,
                pe=pe,
            )
            for task in tasks
        )
    return PendingJobs(tuple(jobs), tuple(skipped))


# --------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class QueueInstance:
    """One queue on one host as qhost -q shows it."""

    queue: str
    slots: int
    slots_used: int
    slots_reserved: int
    state: str


@dataclass(frozen=True)
class Host:
    """One exec host: its queue instances, free mem_requested, and why it is unusable.

    `slots_*` add up the queue instances counted (every queue, or those the caller
    named). `mem_capacity` is the host's whole mem_requested when the caller knows it
    (qconf -se complex_values): then a host counts as idle only with all of it free.
    `problem` is None for a host that can take jobs.
    """

    name: str
    slots: int
    slots_used: int
    slots_reserved: int
    mem_free: int | None
    mem_total: int | None
    mem_capacity: int | None
    reachable: bool
    queues: tuple[QueueInstance, ...]
    problem: str | None = None

    @property
    def slots_free(self) -> int:
        return max(0, self.slots - self.slots_used - self.slots_reserved)

    @property
    def states(self) -> str:
        """Every state letter of the host's counted queue instances, each once, sorted."""
        return "".join(sorted({letter for queue in self.queues for letter in queue.state}))

    @property
    def idle(self) -> bool:
        """No job runs or is reserved here: no slot used and, if known, all memory free.

        qhost prints the free memory to three decimals of its unit (23.050G for a host of
        23603M: 0.2M short), so "all" allows for that rounding, half a thousandth of the
        unit: less than any job asks for."""
        if self.slots_used or self.slots_reserved:
            return False
        if self.mem_capacity is None:
            return True
        unit = max([1, *(f for f in (1024, 1024**2, 1024**3, 1024**4) if f <= self.mem_capacity)])
        return (self.mem_free or 0) >= self.mem_capacity - unit // 2000 - 1

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "slots": self.slots,
            "slots_used": self.slots_used,
            "slots_reserved": self.slots_reserved,
            "mem_free": self.mem_free,
            "mem_total": self.mem_total,
            "mem_capacity": self.mem_capacity,
            "reachable": self.reachable,
            "states": self.states,
            "problem": self.problem,
        }


def host_problem(host: Host, ignore: str = "") -> str | None:
    """Why the scheduler would start no job on `host`, or None.

    State letters in `ignore` do not count (the planner passes "d" for hosts it drains
    itself: it disabled them, and can enable them again).
    """
    if not host.reachable:
        return "unreachable (no load report)"
    if not host.queues:
        return "no queue instance"
    for letter, word in BLOCKING_STATES.items():
        if letter in host.states and letter not in ignore:
            return f"{word} (queue state {host.states})"
    if host.mem_free is None:
        return f"no {MEMORY_RESOURCE} value"
    return None


def text_or_none(value: str | None) -> str | None:
    """qhost's '-' (no value: host down, or never reported) as None."""
    value = (value or "").strip()
    return None if value in ("", "-") else value


def parse_hosts(
    text: str,
    resource: str = MEMORY_RESOURCE,
    queues: Collection[str] | None = None,
    capacities: Mapping[str, str | int] | None = None,
) -> list[Host]:
    """Exec hosts of `qhost -xml -F mem_requested -q`, in the order qhost lists them.

    The `global` pseudo host is left out. `queues` limits the queue instances counted
    (None: all). `capacities` maps host -> its whole mem_requested (its complex_values),
    which qhost does not show: `-F` prints what is still free. Each host's `problem`
    says why it is unusable: no load report (its execd is down or never started),
    a blocking queue state (u, E, d, D, o, s, S, C, A, c), no queue, or no free-memory
    value.
    """
    capacities = capacities or {}
    hosts = []
    for element in parse_xml(text).iter("host"):
        name = element.get("name", "")
        if name == GLOBAL_HOST:
            continue
        values = {value.get("name"): value.text for value in element.findall("hostvalue")}
        resources = {value.get("name"): value.text for value in element.findall("resourcevalue")}
        instances = []
        for queue in element.findall("queue"):
            qname = queue.get("name", "")
            if queues is not None and qname not in queues:
                continue
            qvalues = {value.get("name"): value.text for value in queue.findall("queuevalue")}
            instances.append(
                QueueInstance(
                    queue=qname,
                    slots=int(text_or_none(qvalues.get("slots")) or 0),
                    slots_used=int(text_or_none(qvalues.get("slots_used")) or 0),
                    slots_reserved=int(text_or_none(qvalues.get("slots_resv")) or 0),
                    state=(qvalues.get("state_string") or "").strip(),
                )
            )
        mem_free = text_or_none(resources.get(resource))
        mem_total = text_or_none(values.get("mem_total"))
        capacity = capacities.get(name)
        host = Host(
            name=name,
            slots=sum(queue.slots for queue in instances),
            slots_used=sum(queue.slots_used for queue in instances),
            slots_reserved=sum(queue.slots_reserved for queue in instances),
            mem_free=None if mem_free is None else parse_memory(mem_free),
            mem_total=None if mem_total is None else parse_memory(mem_total),
            mem_capacity=None if capacity is None else parse_memory(capacity),
            reachable=text_or_none(values.get("load_avg")) is not None,
            queues=tuple(instances),
        )
        hosts.append(replace(host, problem=host_problem(host)))
    return hosts


def unreachable_hosts(text: str) -> list[str]:
    """Exec hosts that `qhost -xml ...` shows as lost: no load report, or queue state u.

    Lost hosts are not the planner's business (their jobs are rescheduled by SGE and
    the nodes replaced by the caller), but the caller needs their names.
    """
    return [host.name for host in parse_hosts(text) if not host.reachable or "u" in host.states]


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InstanceType:
    """An instance type the autoscaler may launch: slots = vCPUs, memory in MiB."""

    name: str
    vcpus: int
    memory_mib: int
    price: float | None = None

    def capacity(self, reserve: int) -> int:
        """The mem_requested roles/sge gives such a node: its memory minus the reserve."""
        return max(0, self.memory_mib * MIB - reserve)


@dataclass(frozen=True)
class InFlight:
    """A node being launched that is not an exec host yet."""

    name: str
    instance_type: str


@dataclass(frozen=True)
class Policy:
    """Bounds of one pass. min/max count compute nodes: usable hosts, hosts being
    drained or on a spot notice (until removed) and nodes in flight; hosts the caller
    names as fixed (a master that runs jobs) are not compute nodes."""

    min_nodes: int = 0
    max_nodes: int = 10
    idle_seconds: float = 600.0
    max_launch_per_pass: int = 10
    mem_reserve: str | int = DEFAULT_MEM_RESERVE
    # How long a drained host stays disabled before it may be removed: past a scheduling
    # interval, so that a job the scheduler dispatched as the queue was disabled shows.
    drain_settle_seconds: float = 0.0

    def errors(self) -> list[str]:
        errors = []
        if self.min_nodes < 0:
            errors.append(f"min_nodes={self.min_nodes} must not be negative")
        if self.max_nodes < self.min_nodes:
            errors.append(f"max_nodes={self.max_nodes} is below min_nodes={self.min_nodes}")
        if self.max_launch_per_pass < 0:
            errors.append(f"max_launch_per_pass={self.max_launch_per_pass} must not be negative")
        if self.idle_seconds < 0:
            errors.append(f"idle_seconds={self.idle_seconds} must not be negative")
        if self.drain_settle_seconds < 0:
            errors.append(f"drain_settle_seconds={self.drain_settle_seconds} must not be negative")
        try:
            parse_memory(self.mem_reserve)
        except ValueError:
            errors.append(f"mem_reserve={self.mem_reserve!r} is not a memory value like 512M")
        return errors


def make_instance_types(
    types: Mapping[str, InstanceType | Sequence[int]],
    prices: Mapping[str, float] | None = None,
) -> dict[str, InstanceType]:
    """Instance types from `type -> (vcpus, memory MiB)` (or InstanceType), with prices."""
    prices = prices or {}
    result = {}
    for name, spec in types.items():
        if isinstance(spec, InstanceType):
            vcpus, memory, price = spec.vcpus, spec.memory_mib, spec.price
        else:
            vcpus, memory = (int(part) for part in spec)
            price = None
        result[name] = InstanceType(name, vcpus, memory, prices.get(name, price))
    return result


# --------------------------------------------------------------------------- plan


class Action:
    """One thing the caller does to carry a plan out: Launch, Drain, Remove or Enable."""

    def to_dict(self) -> dict[str, object]:
        raise NotImplementedError

    def describe(self) -> str:
        """The action in a few words, for the summary line."""
        raise NotImplementedError


@dataclass(frozen=True)
class Launch(Action):
    count: int
    instance_type: str

    def to_dict(self) -> dict[str, object]:
        return {"action": "launch", "count": self.count, "instance_type": self.instance_type}

    def describe(self) -> str:
        return f"launch {self.count} x {self.instance_type}"


@dataclass(frozen=True)
class Drain(Action):
    """Disable the host's queue instances; it is removed in a later pass if still idle."""

    host: str

    def to_dict(self) -> dict[str, object]:
        return {"action": "drain", "host": self.host}

    def describe(self) -> str:
        return f"drain {self.host}"


@dataclass(frozen=True)
class Remove(Action):
    """Take a drained, idle host out of SGE and terminate it.

    `reason` is empty for a host the autoscaler drained itself, and NOTICE_REASON for a
    host the spot watcher disabled on an EC2 notice; the summary line and the caller
    show it.
    """

    host: str
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"action": "remove", "host": self.host}
        if self.reason:
            data["reason"] = self.reason
        return data

    def describe(self) -> str:
        return f"remove {self.host}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class Enable(Action):
    """Stop draining a host: it got a job, or pending jobs or min_nodes need it."""

    host: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"action": "enable", "host": self.host, "reason": self.reason}

    def describe(self) -> str:
        return f"enable {self.host}"


@dataclass(frozen=True)
class Placement:
    """Where the plan expects a job to run: kind is host, draining, in_flight or new."""

    job: PendingJob
    target: str
    kind: str


@dataclass(frozen=True)
class Held:
    """A job the plan starts nowhere this pass, and why (waiting or unplaceable)."""

    job: PendingJob
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {**self.job.to_dict(), "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    """The outcome of one pass.

    `waiting` jobs fit some instance type but the node caps held their launch back, or
    they wait for jobs on an existing host to end; `unplaceable` jobs fit no allowed type
    and no usable host, and never cause a launch. `noticed_hosts` are the hosts taken
    out on a spot notice (see `sort_hosts`), busy or idle, removed or not yet.
    """

    now: float
    actions: tuple[Action, ...]
    placements: tuple[Placement, ...]
    waiting: tuple[Held, ...]
    unplaceable: tuple[Held, ...]
    excluded_hosts: tuple[tuple[str, str], ...]
    counts: Mapping[str, object]
    summary: str
    noticed_hosts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The plan as plain lists and dicts, ready for json.dumps or a module's result."""
        return {
            "time": iso_time(self.now),
            "now": self.now,
            "actions": [action.to_dict() for action in self.actions],
            "placements": [
                {"job": item.job.label, "target": item.target, "kind": item.kind}
                for item in self.placements
            ],
            "waiting": [item.to_dict() for item in self.waiting],
            "unplaceable": [item.to_dict() for item in self.unplaceable],
            "excluded_hosts": [{"host": host, "reason": why} for host, why in self.excluded_hosts],
            "noticed_hosts": list(self.noticed_hosts),
            "counts": dict(self.counts),
            "summary": self.summary,
        }


def iso_time(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Bin:
    """Capacity the packer fills: a host's free part, or a whole node in flight or new."""

    name: str
    kind: str
    slots: int
    memory: int
    instance_type: str | None = None
    jobs: list[PendingJob] = field(default_factory=list)

    def fits(self, job: PendingJob) -> bool:
        return job.slots <= self.slots and job.memory <= self.memory

    def take(self, job: PendingJob) -> None:
        self.slots -= job.slots
        self.memory -= job.memory
        self.jobs.append(job)


def job_order(job: PendingJob) -> tuple:
    """Largest memory first, then more slots; then by job and task id, for repeatability."""
    number = int(job.job_id) if job.job_id.isdigit() else 0
    return (-job.memory, -job.slots, number, job.job_id, job.task or 0)


def fitting_type(
    job: PendingJob, types: Iterable[InstanceType], reserve: int
) -> InstanceType | None:
    """The type a new node for `job` gets: the cheapest that fits when every fitting type
    has a price, else the smallest (memory, then vCPUs); ties go by name."""
    fits = [
        kind for kind in types if job.slots <= kind.vcpus and job.memory <= kind.capacity(reserve)
    ]
    if not fits:
        return None
    if all(kind.price is not None for kind in fits):
        return min(fits, key=lambda kind: (kind.price, kind.memory_mib, kind.vcpus, kind.name))
    return min(fits, key=lambda kind: (kind.memory_mib, kind.vcpus, kind.name))


def fits_host(job: PendingJob, host: Host) -> bool:
    """Whether `job` could ever run on `host` (its whole slots and memory)."""
    whole = host.mem_capacity if host.mem_capacity is not None else host.mem_free or 0
    return job.slots <= host.slots and job.memory <= whole


@dataclass
class Cluster:
    """The hosts of one pass sorted by role; built by `sort_hosts`.

    `noticed` are the hosts the spot watcher took out on an EC2 notice: drained like
    `draining` ones, but never enabled again.
    """

    usable: list[Host]
    draining: list[Host]
    excluded: list[tuple[str, str]]
    in_flight: list[InFlight]
    fixed: set[str]
    noticed: list[Host] = field(default_factory=list)

    @property
    def compute(self) -> list[Host]:
        """Usable hosts that are compute nodes (not fixed)."""
        return [host for host in self.usable if host.name not in self.fixed]

    @property
    def idle_draining(self) -> set[str]:
        return {host.name for host in self.draining if host.idle}

    @property
    def idle_noticed(self) -> set[str]:
        return {host.name for host in self.noticed if host.idle}


def sort_hosts(
    hosts: Sequence[Host],
    in_flight: Sequence[InFlight],
    draining: Collection[str],
    fixed_hosts: Collection[str],
    noticed: Collection[str] = (),
) -> Cluster:
    """Usable, draining, noticed and excluded hosts (by name), and the nodes in flight.

    A draining host is one the caller disabled, so its 'd' state is no problem; any
    other problem (lost, error) leaves it to the caller's lost-host handling. A noticed
    host is one the spot watcher disabled on an EC2 notice (a spot interruption or a
    rebalance recommendation): while its queue shows 'd', it is sorted as noticed (also
    when the caller drains it too), or excluded for any other problem, as a draining
    host is. A noticed host whose queue is not disabled (someone enabled it again) and
    a fixed host are sorted as if there were no notice. Any other disabled host (an
    admin's `qmod -d`) stays excluded. A node in flight that qhost already lists is a
    host now, and counted once, as a host.
    """
    cluster = Cluster([], [], [], [], set(fixed_hosts))
    names = set(draining)
    notices = set(noticed) - cluster.fixed
    for host in sorted(hosts, key=lambda host: natural_key(host.name)):
        if host.name in notices and "d" in host.states:
            problem = host_problem(host, ignore="d")
            if problem is None:
                cluster.noticed.append(host)
            else:
                cluster.excluded.append((host.name, f"{NOTICE_REASON}, {problem}"))
        elif host.name in names:
            problem = host_problem(host, ignore="d")
            if problem is None:
                cluster.draining.append(host)
            else:
                cluster.excluded.append((host.name, f"draining, {problem}"))
        elif host.problem is None:
            cluster.usable.append(host)
        else:
            cluster.excluded.append((host.name, host.problem))
    known = {host.name for host in hosts}
    cluster.in_flight = [node for node in in_flight if node.name not in known]
    return cluster


@dataclass
class Packer:
    """First-fit packing of pending jobs onto bins, opening new nodes within the caps."""

    cluster: Cluster
    types: list[InstanceType]
    policy: Policy
    reserve: int
    bins: list[Bin] = field(default_factory=list)
    new_nodes: list[Bin] = field(default_factory=list)
    waiting: list[Held] = field(default_factory=list)
    unplaceable: list[Held] = field(default_factory=list)

    def __post_init__(self) -> None:
        by_name = {kind.name: kind for kind in self.types}
        self.bins = [
            Bin(host.name, "host", host.slots_free, host.mem_free or 0)
            for host in self.cluster.usable
        ]
        # A draining host that runs a job is enabled again, so its free part takes jobs
        # too; an idle one is kept only if a job lands on it.
        self.bins += [
            Bin(host.name, "draining", host.slots_free, host.mem_free or 0)
            for host in self.cluster.draining
        ]
        for node in self.cluster.in_flight:
            kind = by_name.get(node.instance_type)
            slots, memory = (kind.vcpus, kind.capacity(self.reserve)) if kind else (0, 0)
            self.bins.append(Bin(node.name, "in_flight", slots, memory, node.instance_type))

    def kept_draining(self) -> set[str]:
        """Idle draining hosts that pending jobs were placed on."""
        idle = self.cluster.idle_draining
        return {item.name for item in self.bins if item.name in idle and item.jobs}

    def nodes(self) -> int:
        """Compute nodes after this pass, but for idle draining or noticed hosts nobody
        needs (a noticed host takes no job: it counts while a job runs there)."""
        busy_draining = len(self.cluster.draining) - len(self.cluster.idle_draining)
        busy_noticed = len(self.cluster.noticed) - len(self.cluster.idle_noticed)
        return (
            len(self.cluster.compute)
            + busy_draining
            + busy_noticed
            + len(self.kept_draining())
            + len(self.cluster.in_flight)
            + len(self.new_nodes)
        )

    def pack(self, jobs: Iterable[PendingJob]) -> None:
        for job in sorted(jobs, key=job_order):
            target = next((item for item in self.bins if item.fits(job)), None)
            if target is None:
                self.open_node(job)
            else:
                target.take(job)

    def open_node(self, job: PendingJob) -> None:
        kind = fitting_type(job, self.types, self.reserve)
        if kind is None:
            if any(fits_host(job, host) for host in self.cluster.usable):
                self.waiting.append(Held(job, "waiting for running jobs to end on a usable host"))
            else:
                reason = "larger than every allowed instance type and every usable host"
                self.unplaceable.append(Held(job, reason))
            return
        if self.nodes() >= self.policy.max_nodes:
            reason = f"waiting for capacity: max_nodes={self.policy.max_nodes} reached"
            self.waiting.append(Held(job, reason))
            return
        if len(self.new_nodes) >= self.policy.max_launch_per_pass:
            limit = self.policy.max_launch_per_pass
            self.waiting.append(Held(job, f"waiting for capacity: max_launch_per_pass={limit}"))
            return
        name = f"new-{len(self.new_nodes) + 1}"
        node = Bin(name, "new", kind.vcpus, kind.capacity(self.reserve), kind.name)
        node.take(job)
        self.new_nodes.append(node)
        self.bins.append(node)

    def launches(self) -> list[Launch]:
        counts: dict[str, int] = {}
        for node in self.new_nodes:
            name = node.instance_type or ""
            counts[name] = counts.get(name, 0) + 1
        return [Launch(count, name) for name, count in sorted(counts.items())]


def draining_actions(
    packer: Packer, drain_started: Mapping[str, float] | None = None, now: float = 0.0
) -> tuple[list[Action], int]:
    """Enable or remove each draining host, remove idle noticed ones; also the compute
    nodes left afterwards.

    Busy hosts are enabled (a job reached them before the drain took), as are idle ones
    that pending jobs were placed on, and idle ones min_nodes needs, highest name
    first removed, lowest first kept. An idle host drained less than
    policy.drain_settle_seconds ago (per `drain_started`; a host without an entry is
    settled) is left draining: the next pass checks it again before removing it.

    A noticed host (disabled by the spot watcher) is never enabled: busy, it is left
    alone (its job may lack the rerun flag, so `qmod -rq` left it running); idle and
    settled, it is removed (reason NOTICE_REASON), first of all and whatever min_nodes
    says, since it offers no capacity and EC2 takes it anyway. It counts as a compute
    node until then, so idle draining hosts are removed, and usable ones drained,
    only as far as min_nodes allows without it.
    """
    cluster, policy = packer.cluster, packer.policy
    started = drain_started or {}
    idle = cluster.idle_draining
    kept = packer.kept_draining()
    idle_noticed = cluster.idle_noticed
    nodes = packer.nodes() + len(idle - kept) + len(idle_noticed)

    def settled(name: str) -> bool:
        return now - started.get(name, float("-inf")) >= policy.drain_settle_seconds

    actions: list[Action] = [
        Enable(host.name, "a job runs there") for host in cluster.draining if host.name not in idle
    ]
    for host in sorted(cluster.noticed, key=lambda host: natural_key(host.name), reverse=True):
        if host.name in idle_noticed and settled(host.name):
            actions.append(Remove(host.name, NOTICE_REASON))
            nodes -= 1
    for host in sorted(cluster.draining, key=lambda host: natural_key(host.name), reverse=True):
        if host.name not in idle:
            continue
        if host.name in kept:
            actions.append(Enable(host.name, "pending jobs fit there"))
        elif nodes - 1 < policy.min_nodes:
            actions.append(Enable(host.name, f"min_nodes={policy.min_nodes}"))
        elif not settled(host.name):
            continue  # still settling: removed by a later pass if it stays idle
        else:
            actions.append(Remove(host.name))
            nodes -= 1
    return actions, nodes


def drain_actions(
    packer: Packer, nodes: int, idle_since: Mapping[str, float], now: float
) -> list[Action]:
    """Drain idle, unneeded compute hosts, highest name first, down to min_nodes."""
    policy = packer.policy
    placed_on = {item.name for item in packer.bins if item.kind == "host" and item.jobs}
    candidates = [
        host
        for host in packer.cluster.compute
        if host.idle
        and host.name not in placed_on
        and host.name in idle_since
        and now - idle_since[host.name] >= policy.idle_seconds
    ]
    actions: list[Action] = []
    for host in sorted(candidates, key=lambda host: natural_key(host.name), reverse=True):
        if nodes - 1 < policy.min_nodes:
            break
        actions.append(Drain(host.name))
        nodes -= 1
    return actions


def plan_pass(
    pending: Sequence[PendingJob],
    hosts: Sequence[Host],
    instance_types: Mapping[str, InstanceType | Sequence[int]],
    policy: Policy,
    *,
    now: float,
    idle_since: Mapping[str, float] | None = None,
    in_flight: Sequence[InFlight] = (),
    draining: Collection[str] = (),
    prices: Mapping[str, float] | None = None,
    fixed_hosts: Collection[str] = (),
    drain_started: Mapping[str, float] | None = None,
    noticed: Collection[str] = (),
) -> Plan:
    """Plan one pass of the autoscaler.

    Jobs are packed largest memory first (ties: more slots) by first fit, a job's slots
    and memory on one host: onto the free part of usable hosts (by name, node1 before
    node2, so low numbers fill up), then of hosts being drained (enabling one costs
    nothing and runs the job now), then onto nodes in flight, then onto new nodes. A new
    node takes the cheapest fitting type (when every fitting type has a price) or the
    smallest, and further jobs fill it before another is opened. Compute nodes (usable
    + draining and kept + in flight + new) never exceed max_nodes, and at most
    max_launch_per_pass are launched; jobs held back by these caps wait. A job that no
    type and no usable host could ever hold is unplaceable: reported, never launched for.

    Draining hosts: see `draining_actions` (`drain_started`: host -> when its drain
    began, for policy.drain_settle_seconds). Scale down, only in a pass that launches
    nothing: a usable compute host with no job, idle for idle_seconds (per `idle_since`,
    which the caller keeps; a host without an entry is not idle yet), and given no
    pending job, is drained, highest name first (packing fills low numbers, so high ones
    empty first), while compute nodes stay >= min_nodes. `fixed_hosts` (a master that
    runs jobs) take jobs but are no compute nodes: never drained, never counted.

    Spot notices: `noticed` names the hosts whose spot watcher handled an EC2 notice (a
    spot interruption or a rebalance recommendation) and so disabled their queue
    (`qmod -d`) and rescheduled their jobs (`qmod -rq`). Such a host, while its queue
    shows 'd', is one the autoscaler drains although it never ran a Drain: its capacity
    takes no pending job (they go to other hosts, in-flight or new nodes, so a
    replacement is launched when they need it), it is never enabled, and a job still
    running there (one without the rerun flag, which `qmod -rq` leaves) keeps it. Once
    it runs no job it is removed through the two-step path of a drain, without waiting
    idle_seconds: the watcher's `qmod -d` was the first step, and the Remove comes once
    the drain has settled, drain_settle_seconds after `drain_started[host]` (which the
    caller sets to when it first saw the notice; no entry: settled, removed in this
    pass). It counts as a compute node (for min_nodes and max_nodes) until removed, as a
    draining host does, but min_nodes never keeps it. A disabled host without a notice
    (an admin's) stays excluded and untouched.

    Raises ValueError for a policy that makes no sense (Policy.errors()).
    """
    errors = policy.errors()
    if errors:
        raise ValueError("; ".join(errors))
    reserve = parse_memory(policy.mem_reserve)
    types = sorted(make_instance_types(instance_types, prices).values(), key=lambda k: k.name)
    cluster = sort_hosts(hosts, in_flight, draining, fixed_hosts, noticed)
    packer = Packer(cluster, types, policy, reserve)
    packer.pack(pending)

    launches = packer.launches()
    enables_removes, nodes = draining_actions(packer, drain_started, now)
    drains = [] if launches else drain_actions(packer, nodes, idle_since or {}, now)
    actions: list[Action] = [*launches, *enables_removes, *drains]

    placements = tuple(
        Placement(job, item.name, item.kind) for item in packer.bins for job in item.jobs
    )
    counts = {
        "pending_jobs": len(pending),
        "pending_slots": sum(job.slots for job in pending),
        "pending_memory": sum(job.memory for job in pending),
        "free_slots": sum(host.slots_free for host in cluster.usable),
        "free_memory": sum(host.mem_free or 0 for host in cluster.usable),
        "hosts_usable": len(cluster.usable),
        "hosts_draining": len(cluster.draining) + len(cluster.noticed),
        "hosts_noticed": len(cluster.noticed),
        "hosts_excluded": len(cluster.excluded),
        "in_flight": len(cluster.in_flight),
        "new_nodes": len(packer.new_nodes),
        "waiting": len(packer.waiting),
        "unplaceable": len(packer.unplaceable),
    }
    return Plan(
        now=now,
        actions=tuple(actions),
        placements=placements,
        waiting=tuple(packer.waiting),
        unplaceable=tuple(packer.unplaceable),
        excluded_hosts=tuple(cluster.excluded),
        counts=counts,
        summary=render_summary(now, counts, actions, [host.name for host in cluster.noticed]),
        noticed_hosts=tuple(host.name for host in cluster.noticed),
    )


def render_summary(
    now: float,
    counts: Mapping[str, int],
    actions: Sequence[Action],
    noticed: Sequence[str] = (),
) -> str:
    """One log line: time, pending work, free capacity, nodes by state, actions.

    Hosts on a spot notice count as draining, and are named: `2 draining (spot notice:
    node003)`.
    """
    done = ", ".join(action.describe() for action in actions) or "none"
    on_notice = f" ({NOTICE_REASON}: {', '.join(noticed)})" if noticed else ""
    return (
        f"{iso_time(now)} pending {counts['pending_jobs']} jobs "
        f"({counts['pending_slots']} slots, {format_memory(counts['pending_memory'])}; "
        f"{counts['waiting']} waiting, {counts['unplaceable']} unplaceable); "
        f"free {counts['free_slots']} slots, {format_memory(counts['free_memory'])}; "
        f"hosts {counts['hosts_usable']} usable, {counts['hosts_draining']} draining{on_notice}, "
        f"{counts['hosts_excluded']} excluded, {counts['in_flight']} in flight; "
        f"actions: {done}"
    )
