"""Unit tests of plugins/module_utils/autoscale.py, the autoscaler's planning core.

The parsers are driven with XML recorded from a real Son of Grid Engine 8.1.9 qmaster
(tests/unit/fixtures/sge_autoscale/, written by capture.sh there, whose header says
which state each file shows; none was edited by hand). The planner is driven with small
hand-made clusters, so that each rule is seen on its own, and end to end with the
recorded XML.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from ansible_collections.segway.cluster.plugins.module_utils import autoscale as au
from ansible_collections.segway.cluster.plugins.module_utils import sge

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sge_autoscale"

G = 1024**3
M = 1024**2
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
TYPES = {
    "c5.large": (2, 4096),
    "m5.large": (2, 8192),
    "r5.large": (2, 16384),
    "m5.xlarge": (4, 16384),
}
# What roles/sge gives a node of each type: memory minus the 512M reserve.
CAPACITY = {name: memory * M - 512 * M for name, (_vcpus, memory) in TYPES.items()}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def job(job_id: int, mem: str = "1G", slots: int = 1, task: int | None = None) -> au.PendingJob:
    per_slot = au.parse_memory(mem)
    return au.PendingJob(
        str(job_id), task, f"job{job_id}", "sgetest", slots, per_slot, per_slot * slots
    )


def host(
    name: str,
    *,
    slots: int = 2,
    used: int = 0,
    free: str = "7.5G",
    capacity: str | None = None,
    state: str = "",
    reachable: bool = True,
) -> au.Host:
    made = au.Host(
        name=name,
        slots=slots,
        slots_used=used,
        slots_reserved=0,
        mem_free=au.parse_memory(free),
        mem_total=8 * G,
        mem_capacity=None if capacity is None else au.parse_memory(capacity),
        reachable=reachable,
        queues=(au.QueueInstance("all.q", slots, used, 0, state),),
    )
    return replace(made, problem=au.host_problem(made))


def plan(jobs=(), hosts=(), **kwargs) -> au.Plan:
    policy = kwargs.pop("policy", au.Policy(min_nodes=0, max_nodes=10, idle_seconds=600))
    return au.plan_pass(
        list(jobs), list(hosts), kwargs.pop("types", TYPES), policy, now=NOW, **kwargs
    )


def targets(result: au.Plan) -> dict[str, str]:
    return {item.job.label: item.target for item in result.placements}


def actions(result: au.Plan) -> list[str]:
    return [action.describe() for action in result.actions]


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4G", 4 * G),
        ("500M", 500 * M),
        ("2.5G", 2560 * M),
        ("1024", 1024),
        ("1K", 1024),
        ("1k", 1000),
        ("1m", 1000**2),
        ("2g", 2 * 1000**3),
        ("1T", 1024**4),
        ("1t", 1000**4),
        ("7.500G", 7680 * M),
        ("0.0", 0),
        ("0", 0),
        (" 3M ", 3 * M),
        (4096, 4096),
    ],
)
def test_parse_memory(text, size):
    assert au.parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "4GB", "-1G", "abc", "1X", "G", "1.5.2G", True, -1])
def test_parse_memory_refuses(text):
    with pytest.raises(ValueError):
        au.parse_memory(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0"),
        (512 * M, "512M"),
        (2560 * M, "2.5G"),
        (3 * G, "3G"),
        (1536, "1.5K"),
        (2 * 1024**4, "2T"),
    ],
)
def test_format_memory(size, text):
    assert au.format_memory(size) == text


@pytest.mark.parametrize(
    ("spec", "ids"),
    [
        ("1-10:1", list(range(1, 11))),
        ("3,5,7", [3, 5, 7]),
        ("1-3:1,7-9:2", [1, 2, 3, 7, 9]),
        ("2-10:4", [2, 6, 10]),
        ("4", [4]),
        ("4-5", [4, 5]),
    ],
)
def test_parse_task_ids(spec, ids):
    assert au.parse_task_ids(spec) == ids


@pytest.mark.parametrize("spec", ["5-3:1", "0", "1-4:0", "a-b"])
def test_parse_task_ids_refuses(spec):
    with pytest.raises(ValueError):
        au.parse_task_ids(spec)


@pytest.mark.parametrize(
    ("spec", "low"), [("4", 4), ("2-4", 2), ("-8", 1), ("2-", 2), ("8,2-4", 2), ("3-3", 3)]
)
def test_range_minimum(spec, low):
    assert au.range_minimum(spec) == low


def test_natural_order_puts_node9_before_node10():
    names = ["node10", "node9", "node001", "master", "node2"]
    assert sorted(names, key=au.natural_key) == ["master", "node001", "node2", "node9", "node10"]


# --------------------------------------------------------------------------- qstat XML


def pending_jobs(name: str = "qstat_pending.xml", **kwargs) -> au.PendingJobs:
    return au.parse_pending_jobs(fixture(name), **kwargs)


def by_label(jobs) -> dict[str, au.PendingJob]:
    return {item.label: item for item in jobs}


def test_pending_expands_arrays_and_counts_only_plain_qw():
    parsed = pending_jobs()
    assert sorted(by_label(parsed.jobs), key=au.natural_key) == [
        "18.2", "18.3", "18.4", "18.5",  # array_1G: task 1 runs, 2-5:1 wait
        "19", "20", "21", "22", "23", "24",
        "27.1", "27.4", "27.7", "27.10",  # step_array: 1-10:3
        "28.1", "28.3", "28.6", "28.7",  # list_array: 2 and 5 deleted, 4 held
        "29", "30",
    ]  # fmt: skip
    assert [(item.job_id, item.tasks, item.state, item.reason) for item in parsed.skipped] == [
        ("16", "", "Eqw", "error state"),
        ("28", "4", "hqw", "on hold"),
        ("25", "", "hqw", "on hold"),
        ("26", "1-3:1", "hqw", "on hold"),
    ]


@pytest.mark.parametrize(
    ("label", "name", "slots", "memory"),
    [
        ("19", "plain_500M", 1, 500 * M),
        ("20", "plain_2.5G_hvmem", 1, 2560 * M),  # the h_vmem=3G request is not it
        ("21", "plain_1g_decimal", 1, 1000**3),
        ("22", "plain_bytes", 1, G),
        ("23", "no_request", 1, 0),  # the complex's default
        ("24", "too_big_64G", 1, 64 * G),
        ("18.3", "array_1G", 1, G),
        ("28.7", "list_array", 1, 512 * M),
        ("29", "pe_2x3G", 2, 6 * G),  # -pe segway_pe 2, 3G per slot
        ("30", "pe_2-4x1G", 2, 2 * G),  # -pe segway_pe 2-4: the lower bound
    ],
)
def test_pending_slots_and_memory(label, name, slots, memory):
    item = by_label(pending_jobs().jobs)[label]
    assert (item.name, item.owner, item.slots, item.memory) == (name, "sgetest", slots, memory)


def test_pending_pe_name_and_per_slot_request():
    jobs = by_label(pending_jobs().jobs)
    assert (jobs["29"].pe, jobs["29"].mem_per_slot) == ("segway_pe", 3 * G)
    assert jobs["19"].pe is None


def test_pending_default_memory_applies_only_without_a_request():
    jobs = by_label(pending_jobs(default_memory="2G").jobs)
    assert jobs["23"].memory == 2 * G
    assert jobs["19"].memory == 500 * M


def test_pending_job_consumable_counts_memory_once_per_job():
    jobs = by_label(pending_jobs(job_consumable=True).jobs)
    assert jobs["29"].memory == 3 * G
    assert jobs["30"].memory == G


def test_rescheduled_job_waits_as_rq_and_counts_only_when_asked():
    default = pending_jobs("qstat_rescheduled.xml")
    assert "17" not in by_label(default.jobs)
    assert ("17", "Rq", "rescheduled") in {(s.job_id, s.state, s.reason) for s in default.skipped}
    with_rq = pending_jobs("qstat_rescheduled.xml", states={"qw", "Rq"})
    assert by_label(with_rq.jobs)["17"].memory == 2 * G
    assert len(with_rq.jobs) == len(default.jobs) + 1


def test_no_pending_jobs():
    parsed = pending_jobs("qstat_empty.xml")
    assert parsed.jobs == parsed.skipped == ()


# --------------------------------------------------------------------------- qhost XML


def hosts_of(name: str, **kwargs) -> dict[str, au.Host]:
    return {item.name: item for item in au.parse_hosts(fixture(name), **kwargs)}


def test_parse_busy_hosts():
    hosts = hosts_of("qhost_busy.xml")
    assert list(hosts) == ["node002", "vm"]  # no 'global'
    vm = hosts["vm"]
    assert (vm.slots, vm.slots_used, vm.slots_free, vm.mem_free) == (2, 2, 0, 3 * G)
    assert vm.mem_total == au.parse_memory("23.6G")
    assert (vm.reachable, vm.states, vm.problem) == (True, "", None)
    assert not vm.idle
    lost = hosts["node002"]
    assert (lost.slots, lost.mem_free, lost.mem_total) == (4, au.parse_memory("15.5G"), None)
    assert (lost.reachable, lost.states) == (False, "u")
    assert lost.problem == "unreachable (no load report)"


@pytest.mark.parametrize(
    ("name", "problem", "used", "free"),
    [
        ("qhost_busy.xml", None, 2, "3G"),
        ("qhost_idle.xml", None, 0, "6G"),
        ("qhost_disabled.xml", "disabled (queue state d)", 2, "3G"),
        ("qhost_idle_disabled.xml", "disabled (queue state d)", 0, "6G"),
        ("qhost_orphaned.xml", "orphaned (queue state o)", 2, "3G"),
        ("qhost_suspended.xml", "suspended (queue state s)", 1, "5G"),
    ],
)
def test_host_states_recorded(name, problem, used, free):
    vm = hosts_of(name)["vm"]
    assert (vm.problem, vm.slots_used, vm.mem_free) == (problem, used, au.parse_memory(free))


def test_queue_filter_and_capacity():
    capacity = {"vm": "6144M"}
    vm = hosts_of("qhost_idle.xml", queues={"other.q"}, capacities=capacity)["vm"]
    assert (vm.slots, vm.problem) == (0, "no queue instance")
    vm = hosts_of("qhost_idle.xml", queues={"all.q"}, capacities=capacity)["vm"]
    assert (vm.slots, vm.mem_capacity, vm.idle) == (2, 6 * G, True)
    assert not hosts_of("qhost_suspended.xml", capacities=capacity)["vm"].idle


def test_parse_hosts_without_the_consumable():
    text = fixture("qhost_idle.xml").replace("name='mem_requested'", "name='other'")
    assert hosts_of_text(text)["vm"].problem == "no mem_requested value"


def hosts_of_text(text: str) -> dict[str, au.Host]:
    return {item.name: item for item in au.parse_hosts(text)}


@pytest.mark.parametrize(
    "name", ["qhost_busy.xml", "qhost_idle.xml", "qhost_disabled.xml", "qhost_orphaned.xml"]
)
def test_unreachable_hosts(name):
    assert au.unreachable_hosts(fixture(name)) == ["node002"]


def test_unreachable_hosts_by_queue_state_alone():
    # A host whose execd just went silent still shows its last load, but qmaster marks
    # the queue instance u: edited from the recording.
    text = fixture("qhost_idle.xml").replace(
        "name='state_string'></queuevalue>", "name='state_string'>u</queuevalue>"
    )
    assert au.unreachable_hosts(text) == ["node002", "vm"]


# --------------------------------------------------------------------------- packing


def test_job_fitting_free_capacity_launches_nothing():
    result = plan([job(1, "3G")], [host("node001", used=1, free="4G")])
    assert targets(result) == {"1": "node001"}
    assert result.actions == ()


def test_largest_memory_first_takes_the_free_capacity():
    # In submission order job 1 (2G) would take node001 and job 2 (5G) a new node.
    result = plan([job(1, "2G"), job(2, "5G"), job(3, "4G")], [host("node001", free="6G")])
    assert targets(result) == {"2": "node001", "3": "new-1", "1": "new-1"}
    assert actions(result) == ["launch 1 x m5.large"]


def test_memory_tie_goes_to_more_slots_first():
    # Both take 4G; the 2-slot job goes first and fills node001's two slots.
    result = plan([job(1, "4G"), job(2, "2G", slots=2)], [host("node001", slots=2, free="4G")])
    assert targets(result) == {"2": "node001", "1": "new-1"}


def test_slots_and_memory_must_both_fit():
    # node001 has memory for both but one free slot.
    result = plan([job(1, "1G"), job(2, "1G")], [host("node001", slots=2, used=1, free="6G")])
    assert sorted(targets(result).values()) == ["new-1", "node001"]
    assert actions(result) == ["launch 1 x c5.large"]


def test_free_capacity_then_in_flight_then_new_nodes():
    jobs = [job(1, "6G"), job(2, "6G"), job(3, "6G")]
    result = plan(
        jobs,
        [host("node001", free="6G")],
        in_flight=[au.InFlight("i-0abc", "m5.large")],
    )
    assert targets(result) == {"1": "node001", "2": "i-0abc", "3": "new-1"}
    assert [item.kind for item in result.placements] == ["host", "in_flight", "new"]
    assert actions(result) == ["launch 1 x m5.large"]


def test_in_flight_node_already_listed_by_qhost_counts_once():
    result = plan(
        [job(1, "6G")],
        [host("node002", free="7.5G")],
        in_flight=[au.InFlight("node002", "m5.large")],
        policy=au.Policy(max_nodes=1),
    )
    assert targets(result) == {"1": "node002"}
    assert result.counts["in_flight"] == 0


def test_new_node_is_filled_before_another_is_opened():
    # m5.large holds 7.5G and 2 slots: 3G jobs go two to a node.
    result = plan([job(n, "3G") for n in range(1, 6)], types={"m5.large": (2, 8192)})
    assert actions(result) == ["launch 3 x m5.large"]
    assert targets(result) == {"1": "new-1", "2": "new-1", "3": "new-2", "4": "new-2", "5": "new-3"}


def test_slots_bound_a_new_node_too():
    result = plan([job(n, "100M") for n in range(1, 4)], types={"c5.large": (2, 4096)})
    assert actions(result) == ["launch 2 x c5.large"]


@pytest.mark.parametrize(
    ("pending", "prices", "chosen"),
    [
        ([job(1, "6G")], None, "m5.large"),
        ([job(1, "3G")], None, "c5.large"),
        ([job(1, "3.6G")], None, "m5.large"),  # c5.large holds 3.5G
        ([job(1, "12G")], None, "r5.large"),  # as much memory as m5.xlarge, fewer vCPUs
        ([job(1, "2G", slots=4)], None, "m5.xlarge"),  # 4 slots x 2G per slot = 8G
        ([job(1, "12G")], {"r5.large": 0.126, "m5.xlarge": 0.192}, "r5.large"),
        ([job(1, "12G")], {"r5.large": 0.25, "m5.xlarge": 0.192}, "m5.xlarge"),
        (
            [job(1, "1G")],
            {"c5.large": 0.2, "m5.large": 0.1, "r5.large": 0.3, "m5.xlarge": 0.4},
            "m5.large",
        ),
    ],
)
def test_new_node_type(pending, prices, chosen):
    result = plan(pending, prices=prices)
    assert result.actions == (au.Launch(1, chosen),)


def test_smallest_type_is_by_memory_before_vcpus():
    types = {"c5.2xlarge": (8, 16384), "r5.large": (2, 16384), "c5.xlarge": (4, 8192)}
    assert plan([job(1, "1G")], types=types).actions == (au.Launch(1, "c5.xlarge"),)
    assert plan([job(1, "10G")], types=types).actions == (au.Launch(1, "r5.large"),)


def test_mixed_types_in_one_pass():
    result = plan([job(1, "12G"), job(2, "6G"), job(3, "2G", slots=4), job(4, "3G")])
    # 12G -> r5.large (3.5G left); 8G over 4 slots -> m5.xlarge (7.5G left, 0 slots);
    # 6G -> m5.large; 3G fits the rest of the r5.large.
    assert actions(result) == ["launch 1 x m5.large", "launch 1 x m5.xlarge", "launch 1 x r5.large"]
    assert targets(result)["4"] == targets(result)["1"]


def test_job_bigger_than_every_type_is_unplaceable_and_launches_nothing():
    result = plan([job(1, "100G"), job(2, "1G", slots=64)], [host("node001", free="0")])
    assert result.actions == ()
    assert [held.job.label for held in result.unplaceable] == ["1", "2"]
    assert result.waiting == ()
    assert "larger than every allowed instance type" in result.unplaceable[0].reason


def test_job_bigger_than_every_type_but_fitting_a_busy_host_waits():
    big = host("node001", slots=8, used=4, free="8G", capacity="60G")
    result = plan([job(1, "40G")], [big])
    assert result.actions == ()
    assert result.unplaceable == ()
    assert [held.job.label for held in result.waiting] == ["1"]


def test_max_nodes_caps_launches():
    hosts = [host("node001", free="0", used=2), host("node002", free="0", used=2)]
    result = plan(
        [job(n, "6G") for n in range(1, 5)],
        hosts,
        in_flight=[au.InFlight("i-1", "c5.large")],
        policy=au.Policy(max_nodes=4),
    )
    # 2 hosts + 1 in flight leave room for one node; the others wait, not unplaceable.
    assert actions(result) == ["launch 1 x m5.large"]
    assert len(result.waiting) == 3
    assert all("max_nodes=4" in held.reason for held in result.waiting)
    assert result.unplaceable == ()


def test_max_launch_per_pass_caps_launches():
    result = plan(
        [job(n, "6G") for n in range(1, 6)], policy=au.Policy(max_nodes=10, max_launch_per_pass=2)
    )
    assert actions(result) == ["launch 2 x m5.large"]
    assert [held.job.label for held in result.waiting] == ["3", "4", "5"]
    assert all("max_launch_per_pass=2" in held.reason for held in result.waiting)


def test_capped_big_job_does_not_block_small_ones_on_free_capacity():
    result = plan(
        [job(1, "12G"), job(2, "1G")], [host("node001", free="2G")], policy=au.Policy(max_nodes=1)
    )
    assert targets(result) == {"2": "node001"}
    assert [held.job.label for held in result.waiting] == ["1"]


def test_unusable_hosts_take_no_jobs():
    hosts = [
        host("node001", free="7G", state="d"),
        host("node002", free="7G", state="au"),
        host("node003", free="7G", reachable=False),
        host("node004", free="7G", state="E"),
        host("node005", free="7G", state="o"),
        host("node006", free="7G", state="S"),
    ]
    result = plan([job(1, "1G")], hosts)
    assert targets(result) == {"1": "new-1"}
    assert dict(result.excluded_hosts) == {
        "node001": "disabled (queue state d)",
        "node002": "unreachable (queue state au)",
        "node003": "unreachable (no load report)",
        "node004": "error (queue state E)",
        "node005": "orphaned (queue state o)",
        "node006": "suspended by subordination (queue state S)",
    }


def test_load_alarm_alone_keeps_a_host_usable():
    result = plan([job(1, "1G")], [host("node001", state="a")])
    assert targets(result) == {"1": "node001"}


# --------------------------------------------------------------------------- scale down

IDLE = {"node001": NOW - 3600, "node002": NOW - 3600, "node003": NOW - 3600}


@pytest.mark.parametrize(
    ("idle_since", "expected"),
    [
        ({"node001": NOW - 600}, ["drain node001"]),  # exactly idle_seconds
        ({"node001": NOW - 599}, []),
        ({}, []),  # the caller has not seen it idle yet
    ],
)
def test_drain_needs_idle_seconds(idle_since, expected):
    result = plan([], [host("node001")], idle_since=idle_since)
    assert actions(result) == expected


@pytest.mark.parametrize(
    ("busy", "expected"),
    [
        (host("node001", used=1, free="6.5G"), []),
        (host("node001", used=0, free="6.5G", capacity="7.5G"), []),  # memory still held
        (host("node001", used=0, free="7.5G", capacity="7.5G"), ["drain node001"]),
    ],
)
def test_only_hosts_without_jobs_are_drained(busy, expected):
    assert actions(plan([], [busy], idle_since=IDLE)) == expected


@pytest.mark.parametrize(
    ("min_nodes", "in_flight", "expected"),
    [
        (0, [], ["drain node003", "drain node002", "drain node001"]),
        (2, [], ["drain node003"]),
        (3, [], []),
        (2, [au.InFlight("i-1", "m5.large")], ["drain node003", "drain node002"]),
    ],
)
def test_drain_highest_name_first_down_to_min_nodes(min_nodes, in_flight, expected):
    hosts = [host("node001"), host("node002"), host("node003")]
    result = plan(
        [],
        hosts,
        idle_since=IDLE,
        in_flight=in_flight,
        policy=au.Policy(min_nodes=min_nodes, max_nodes=10),
    )
    assert actions(result) == expected


def test_idle_host_a_pending_job_was_placed_on_is_not_drained():
    result = plan([job(1, "1G")], [host("node001"), host("node002")], idle_since=IDLE)
    assert targets(result) == {"1": "node001"}
    assert actions(result) == ["drain node002"]


def test_no_drain_in_a_pass_that_launches():
    # The 12G job fits no host; node001 stays although idle for an hour.
    result = plan([job(1, "12G")], [host("node001")], idle_since=IDLE)
    assert actions(result) == ["launch 1 x r5.large"]


def test_fixed_hosts_take_jobs_but_are_never_drained_nor_counted():
    result = plan(
        [job(1, "1G")],
        [host("master", slots=1, free="2G"), host("node001")],
        idle_since={"master": 0.0, "node001": 0.0},
        fixed_hosts={"master"},
        policy=au.Policy(min_nodes=0, max_nodes=1),
    )
    assert targets(result) == {"1": "master"}
    assert actions(result) == ["drain node001"]


@pytest.mark.parametrize(
    ("drained", "pending", "min_nodes", "expected"),
    [
        (host("node002", state="d"), [], 0, ["remove node002"]),
        (host("node002", state="d", used=1, free="6G"), [], 0, ["enable node002"]),
        (host("node002", state="d"), [job(1, "7G")], 0, ["enable node002"]),
        (host("node002", state="d"), [], 2, ["enable node002"]),
        # A pending job that does not fit the draining host: launch, and remove it.
        (host("node002", state="d"), [job(1, "12G")], 0, ["launch 1 x r5.large", "remove node002"]),
    ],
)
def test_draining_host_is_removed_or_enabled(drained, pending, min_nodes, expected):
    result = plan(
        pending,
        [host("node001", used=2, free="0"), drained],
        draining={"node002"},
        policy=au.Policy(min_nodes=min_nodes, max_nodes=10),
    )
    assert actions(result) == expected
    assert "node002" not in dict(result.excluded_hosts)


def test_a_drain_settles_before_its_host_is_removed():
    hosts = [host("node001", used=2, free="0"), host("node002", state="d")]
    policy = au.Policy(drain_settle_seconds=30)
    kept = plan([], hosts, draining={"node002"}, policy=policy, drain_started={"node002": NOW - 10})
    assert actions(kept) == []
    gone = plan([], hosts, draining={"node002"}, policy=policy, drain_started={"node002": NOW - 31})
    assert actions(gone) == ["remove node002"]
    # A pending job that fits is placed there at once, settled or not.
    needed = plan(
        [job(1, "1G")], hosts, draining={"node002"}, policy=policy, drain_started={"node002": NOW}
    )
    assert actions(needed) == ["enable node002"]
    assert au.Policy(drain_settle_seconds=-1).errors() == [
        "drain_settle_seconds=-1 must not be negative"
    ]


def test_enable_says_why():
    # node002 runs a job and has 6G left: the 7G job goes to node003.
    drained = [host("node002", state="d", used=1, free="6G"), host("node003", state="d")]
    result = plan(
        [job(1, "7G")],
        [host("node001", used=2, free="0"), *drained],
        draining={"node002", "node003"},
    )
    assert result.actions == (
        au.Enable("node002", "a job runs there"),
        au.Enable("node003", "pending jobs fit there"),
    )


def test_draining_hosts_are_removed_highest_first_down_to_min_nodes():
    drained = [host("node002", state="d"), host("node003", state="d")]
    result = plan(
        [],
        [host("node001", used=1, free="1G"), *drained],
        draining={"node002", "node003"},
        policy=au.Policy(min_nodes=2, max_nodes=10),
    )
    assert actions(result) == ["remove node003", "enable node002"]


def test_lost_draining_host_is_left_to_the_caller():
    result = plan([], [host("node002", state="du", reachable=False)], draining={"node002"})
    assert result.actions == ()
    assert dict(result.excluded_hosts) == {"node002": "draining, unreachable (no load report)"}


def test_removing_and_new_drains_keep_min_nodes_together():
    hosts = [host("node001"), host("node002"), host("node003", state="d")]
    result = plan(
        [],
        hosts,
        draining={"node003"},
        idle_since=IDLE,
        policy=au.Policy(min_nodes=1, max_nodes=10),
    )
    assert actions(result) == ["remove node003", "drain node002"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (au.Policy(min_nodes=-1), "min_nodes=-1"),
        (au.Policy(min_nodes=3, max_nodes=2), "max_nodes=2 is below min_nodes=3"),
        (au.Policy(max_launch_per_pass=-1), "max_launch_per_pass=-1"),
        (au.Policy(idle_seconds=-5), "idle_seconds=-5"),
        (au.Policy(mem_reserve="lots"), "mem_reserve='lots'"),
    ],
)
def test_nonsense_policy_is_refused(policy, message):
    with pytest.raises(ValueError, match=message):
        plan([], [], policy=policy)


def test_mem_reserve_decides_what_fits_a_type():
    # m5.large has 8192 MiB: 7.5G fits with the default 512M reserve, not with 1G.
    assert actions(plan([job(1, "7.5G")])) == ["launch 1 x m5.large"]
    tight = au.Policy(mem_reserve="1G")
    assert actions(plan([job(1, "7.5G")], policy=tight)) == ["launch 1 x r5.large"]


# --------------------------------------------------------------------------- reporting


def test_summary_line_and_dict():
    result = plan(
        [job(1, "6G"), job(2, "1.5G", slots=2), job(3, "100G")],
        [host("node001", used=1, free="3G"), host("node002", state="au")],
        in_flight=[au.InFlight("i-1", "c5.large")],
    )
    assert result.summary == (
        "2027-01-15T08:00:00Z pending 3 jobs (4 slots, 109G; 0 waiting, 1 unplaceable); "
        "free 1 slots, 3G; hosts 1 usable, 0 draining, 1 excluded, 1 in flight; "
        "actions: launch 1 x m5.large"
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["time"] == "2027-01-15T08:00:00Z"
    assert data["actions"] == [{"action": "launch", "count": 1, "instance_type": "m5.large"}]
    assert data["unplaceable"][0]["job"] == "3"
    assert data["excluded_hosts"] == [{"host": "node002", "reason": "unreachable (queue state au)"}]
    assert {item["job"]: item["target"] for item in data["placements"]} == {
        "1": "new-1",
        "2": "i-1",
    }
    assert data["summary"] == result.summary


def test_summary_of_a_quiet_pass():
    result = plan([], [host("node001")])
    assert result.summary.endswith("actions: none")
    assert "pending 0 jobs (0 slots, 0;" in result.summary


# --------------------------------------------------------------------------- recorded, end to end


def vm_capacity() -> dict[str, str]:
    # qconf -se vm: complex_values mem_requested=6144M, what the role sets.
    config = sge.parse_config(fixture("qconf_se_vm.txt"))
    return {"vm": sge.parse_complex_values(config["complex_values"])["mem_requested"]}


def test_recorded_pending_jobs_on_busy_vm():
    jobs = pending_jobs().jobs
    hosts = au.parse_hosts(fixture("qhost_busy.xml"), capacities=vm_capacity())
    result = plan(jobs, hosts, policy=au.Policy(max_nodes=20, max_launch_per_pass=20))
    # vm is full; 64G fits nothing. 6G on 2 slots opens an m5.large; every other job
    # fits a c5.large (2 slots, 3.5G), two by two, but 2.5G + 1G + 1G sharing one.
    assert actions(result) == ["launch 10 x c5.large", "launch 1 x m5.large"]
    assert [held.job.label for held in result.unplaceable] == ["24"]
    assert result.waiting == ()
    assert targets(result)["29"] == "new-1"
    assert targets(result)["20"] == targets(result)["18.2"] == "new-2"
    assert dict(result.excluded_hosts) == {"node002": "unreachable (no load report)"}
    assert result.summary == (
        "2027-01-15T08:00:00Z pending 20 jobs (22 slots, 86.9G; 0 waiting, 1 unplaceable); "
        "free 0 slots, 3G; hosts 1 usable, 0 draining, 1 excluded, 0 in flight; "
        "actions: launch 10 x c5.large, launch 1 x m5.large"
    )


@pytest.mark.parametrize(
    ("capacity", "printed", "idle"),
    [
        # An EC2 node's mem_requested (MemTotal less the reserve) is seldom a round
        # figure; qhost rounds its free memory to three decimals, even below it.
        ("23603M", "23.050G", True),
        ("15360M", "15.000G", True),
        ("6144M", "6.000G", True),
        ("23603M", "23.049G", False),  # a megabyte taken: a job holds it
        ("23603M", "22.050G", False),
    ],
)
def test_a_host_is_idle_with_all_its_memory_free_as_qhost_rounds_it(capacity, printed, idle):
    assert host("node001", free=printed, capacity=capacity).idle is idle


def test_recorded_idle_vm_is_drained_only_with_its_memory_all_free():
    idle = au.parse_hosts(fixture("qhost_idle.xml"), capacities=vm_capacity())
    result = plan([], idle, idle_since={"vm": NOW - 3600})
    assert actions(result) == ["drain vm"]
    busy = au.parse_hosts(fixture("qhost_suspended.xml"), capacities=vm_capacity())
    assert actions(plan([], busy, idle_since={"vm": NOW - 3600})) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qhost_idle_disabled.xml", [au.Remove("vm")]),
        ("qhost_disabled.xml", [au.Enable("vm", "a job runs there")]),
        ("qhost_orphaned.xml", []),
    ],
)
def test_recorded_draining_vm(name, expected):
    hosts = au.parse_hosts(fixture(name), capacities=vm_capacity())
    assert list(plan([], hosts, draining={"vm"}).actions) == expected


def test_recorded_idle_disabled_vm_not_draining_is_excluded():
    result = plan([job(1, "1G")], au.parse_hosts(fixture("qhost_idle_disabled.xml")))
    assert dict(result.excluded_hosts)["vm"] == "disabled (queue state d)"
    assert actions(result) == ["launch 1 x c5.large"]


# --------------------------------------------------------------------------- spot notices
#
# A noticed host is one whose spot watcher (roles/sge/files/segway_spot_watch.py) handled
# an EC2 notice: it ran `qmod -d` and `qmod -rq` there, so its queue shows 'd'. The core
# drains it as if it had planned the Drain itself (the watcher's qmod -d was that first
# step): its capacity takes no job, it is never enabled, and once idle and settled
# (drain_started, drain_settle_seconds; no entry: settled) the same Remove as a drained
# host's takes it out, without idle_seconds. The module starts the settling clock at
# the pass that first sees the notice, so on a real cluster the Remove comes one pass
# later, as after a Drain (tests/unit/plugins/modules/test_sge_autoscale.py).

SPOT = "spot notice"


def test_noticed_busy_host_is_neither_removed_enabled_nor_planned_on():
    # node002 runs a job qmod -rq could not move (no rerun flag), with 5G free.
    noticed = host("node002", state="d", used=1, free="5G")
    result = plan(
        [job(1, "1G")],
        [host("node001", used=2, free="0"), noticed],
        noticed={"node002"},
        idle_since=IDLE,
    )
    assert targets(result) == {"1": "new-1"}  # not node002, though it fits there
    assert actions(result) == ["launch 1 x c5.large"]
    assert result.noticed_hosts == ("node002",)
    assert "node002" not in dict(result.excluded_hosts)
    assert (result.counts["hosts_draining"], result.counts["hosts_noticed"]) == (1, 1)
    assert (result.counts["free_slots"], result.counts["free_memory"]) == (0, 0)
    # The same with nothing pending: no action, node002 waits for its job.
    assert plan([], [noticed], noticed={"node002"}).actions == ()


def test_noticed_idle_host_is_removed_without_waiting_idle_seconds():
    hosts = [host("node001", used=2, free="0"), host("node002", state="d")]
    # No idle_since at all: a drained host needs none either.
    result = plan([], hosts, noticed={"node002"})
    assert result.actions == (au.Remove("node002", SPOT),)
    assert result.to_dict()["actions"] == [{"action": "remove", "host": "node002", "reason": SPOT}]
    assert actions(result) == ["remove node002 (spot notice)"]


def test_noticed_idle_host_settles_like_a_drain_before_its_removal():
    hosts = [host("node001", used=2, free="0"), host("node002", state="d")]
    policy = au.Policy(drain_settle_seconds=30)
    first = plan([], hosts, noticed={"node002"}, policy=policy, drain_started={"node002": NOW})
    assert first.actions == ()  # seen for the first time: the next pass checks again
    assert first.noticed_hosts == ("node002",)
    later = plan([], hosts, noticed={"node002"}, policy=policy, drain_started={"node002": NOW - 30})
    assert later.actions == (au.Remove("node002", SPOT),)


def test_admin_disabled_host_without_notice_stays_excluded_and_untouched():
    hosts = [host("node001", used=2, free="0"), host("node002", state="d")]
    result = plan([job(1, "1G")], hosts, idle_since=IDLE, noticed={"node003"})
    assert dict(result.excluded_hosts) == {"node002": "disabled (queue state d)"}
    assert actions(result) == ["launch 1 x c5.large"]
    assert result.noticed_hosts == ()
    assert plan([], hosts, idle_since=IDLE, noticed={"node003"}).actions == ()


def test_noticed_host_needed_capacity_is_replaced_by_a_launch():
    """The watcher's qmod -rq sent node002's 6G job back to pending: it waits as Rq and
    nothing else can hold it, so a node is launched while node002 goes."""
    hosts = [host("node001", used=1, free="1G"), host("node002", state="d")]
    result = plan([job(7, "6G")], hosts, noticed={"node002"})
    assert targets(result) == {"7": "new-1"}
    assert actions(result) == ["launch 1 x m5.large", "remove node002 (spot notice)"]
    # Only as far as max_nodes allows: node002, busy, still counts as a node.
    busy = [host("node001", used=1, free="1G"), host("node002", state="d", used=1, free="6G")]
    capped = plan(
        [job(7, "6G")], busy, noticed={"node002"}, policy=au.Policy(min_nodes=0, max_nodes=2)
    )
    assert actions(capped) == []
    assert [held.reason for held in capped.waiting] == ["waiting for capacity: max_nodes=2 reached"]
    # Idle, it is about to go and leaves room for the replacement.
    idle = plan([job(7, "6G")], hosts, noticed={"node002"}, policy=au.Policy(max_nodes=2))
    assert actions(idle) == ["launch 1 x m5.large", "remove node002 (spot notice)"]


def test_noticed_host_counts_against_min_nodes_but_is_never_kept_for_it():
    hosts = [host("node001"), host("node002"), host("node003", state="d")]
    policy = au.Policy(min_nodes=2, max_nodes=10)
    result = plan([], hosts, idle_since=IDLE, noticed={"node003"}, policy=policy)
    # node003 goes whatever min_nodes says; node001 and node002 are the two kept.
    assert actions(result) == ["remove node003 (spot notice)"]
    # Not settled yet, node003 still counts: node002 is drained, as beside a draining host.
    settling = plan(
        [],
        hosts,
        idle_since=IDLE,
        noticed={"node003"},
        drain_started={"node003": NOW},
        policy=au.Policy(min_nodes=2, max_nodes=10, drain_settle_seconds=30),
    )
    assert actions(settling) == ["drain node002"]
    # Beside an idle drained host, the noticed one goes first; min_nodes keeps the other.
    drained = plan(
        [],
        [host("node001"), host("node002", state="d"), host("node003", state="d")],
        draining={"node002"},
        noticed={"node003"},
        policy=au.Policy(min_nodes=2, max_nodes=10),
    )
    assert actions(drained) == ["remove node003 (spot notice)", "enable node002"]


def test_notice_wins_over_a_drain_and_is_never_enabled():
    """node002 was draining when the notice came: busy or wanted, it is not enabled."""
    busy = host("node002", state="d", used=1, free="5G")
    result = plan([job(1, "1G")], [busy], draining={"node002"}, noticed={"node002"})
    assert actions(result) == ["launch 1 x c5.large"]
    idle = plan([], [host("node002", state="d")], draining={"node002"}, noticed={"node002"})
    assert actions(idle) == ["remove node002 (spot notice)"]
    assert idle.counts["hosts_draining"] == 1


@pytest.mark.parametrize(
    ("noticed", "fixed", "expected"),
    [
        # Enabled again (qmod -e) after the notice: an ordinary host, the notice is moot.
        (host("node002"), set(), {}),
        # Lost as well: the lost-host path of the caller handles it.
        (
            host("node002", state="du", reachable=False),
            set(),
            {"node002": "spot notice, unreachable (no load report)"},
        ),
        # A fixed host (the master) is never removed, notice or not.
        (host("node002", state="d"), {"node002"}, {"node002": "disabled (queue state d)"}),
    ],
)
def test_notice_applies_only_to_a_disabled_compute_host(noticed, fixed, expected):
    result = plan([], [noticed], noticed={"node002"}, fixed_hosts=fixed)
    assert dict(result.excluded_hosts) == expected
    assert result.noticed_hosts == ()
    assert result.actions == ()


def test_summary_and_dict_name_the_noticed_hosts():
    hosts = [
        host("node001", used=1, free="3G"),
        host("node002", state="d", used=1, free="5G"),
        host("node003", state="d"),
    ]
    result = plan([], hosts, noticed={"node002", "node003"})
    assert result.summary == (
        "2027-01-15T08:00:00Z pending 0 jobs (0 slots, 0; 0 waiting, 0 unplaceable); "
        "free 1 slots, 3G; hosts 1 usable, 2 draining (spot notice: node002, node003), "
        "0 excluded, 0 in flight; actions: remove node003 (spot notice)"
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["noticed_hosts"] == ["node002", "node003"]
    assert data["counts"]["hosts_noticed"] == 2
    # Without a notice the line reads as it always did.
    assert "draining, " in plan([], hosts[:1]).summary


def test_recorded_noticed_vm():
    """vm disabled as the watcher leaves it (qmod -d): idle, it is removed; with its jobs
    still running, it is left alone, not enabled; a job rescheduled off it (Rq, as qmod
    -rq leaves it) goes to a new node, not back onto vm."""
    idle = au.parse_hosts(fixture("qhost_idle_disabled.xml"), capacities=vm_capacity())
    assert plan([], idle, noticed={"vm"}).actions == (au.Remove("vm", SPOT),)
    busy = au.parse_hosts(fixture("qhost_disabled.xml"), capacities=vm_capacity())
    assert plan([], busy, noticed={"vm"}).actions == ()
    rescheduled = pending_jobs("qstat_rescheduled.xml", states={"qw", "Rq"}).jobs
    assert rescheduled, "the recording has a job waiting as Rq"
    result = plan(rescheduled, busy, noticed={"vm"})
    assert "vm" not in targets(result).values()
    assert [action for action in result.actions if isinstance(action, au.Launch)]
    assert not [action for action in result.actions if isinstance(action, au.Enable)]
    # Without the notice, vm is a disabled host like any other: excluded.
    assert dict(plan(rescheduled, busy).excluded_hosts)["vm"] == "disabled (queue state d)"
