"""playbooks/balance.yml on EC2, run from the controller, on the EC2 twin (issue 16).

The twin (tests/ec2/ec2_twin.py: moto behind the strict proxy for EC2's API, a systemd
container of the node image per instance, SSH as on EC2) runs a small cluster, a master
and node001, and in the same account an instance of another cluster tagged as its
compute node002. Then, with real Grid Engine on the containers:

1. Scale-up: a job fills node001's mem_requested and a second 1G job waits. A dry run
   plans "launch 1 x <compute type>" and changes nothing; one pass launches node002
   through launch.yml, with an instant CreateFleet from the cluster's compute launch template,
   tagging the new instance as the cluster's node002 (seen at the proxy), configures it,
   and the waiting job runs there to exit 0.
2. Scale-down: with the fill job deleted and min_nodes=1, passes drain one idle node,
   then take it out of Grid Engine and terminate its instance. TerminateInstances names
   only that instance of the cluster; the other cluster's node002 runs on untouched.

Opt-in (SEGWAY_BALANCE_TEST=1, make test-balance): about 10 minutes on 2 cores, on top of
the twin's own test in make test. Needs root and a Docker engine.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import test_ec2_twin as base
from ec2_testlib import instances_of, launch_node, nodes_of, tags

pytestmark = pytest.mark.skipif(
    os.environ.get("SEGWAY_BALANCE_TEST") != "1",
    reason="opt-in (SEGWAY_BALANCE_TEST=1, make test-balance): not part of make test",
)

# The twin of test_ec2_twin.py (module scope: this module's cluster, torn down at its end).
twin = base.twin
CLUSTER = base.CLUSTER
POLICY = {"max_nodes": 2, "idle_minutes": 0, "drain_settle_seconds": 5}


def sge(world: dict[str, Any], command: str) -> str:
    return base.master_sh(world, command, user="sgeadmin")


def balance(world: dict[str, Any], **extra: Any) -> base.Run:
    """One pass from the controller, with launch's inputs (a launch pass runs launch.yml)."""
    return base.play(
        world,
        "balance.yml",
        {**base.launch_vars(world), **POLICY, **extra},
        timeout=1500,
    )


def calls_seen(world: dict[str, Any], actions: set[str]) -> tuple[list, Callable[[], None]]:
    """Record the form fields of the given API calls at the proxy (after the twin's own
    hook); returns the list and a function that stops recording."""
    proxy = world["proxy"]
    twin_after = proxy.after
    seen: list[Mapping[str, str]] = []

    def after(action: str, fields: Mapping[str, str], status: int) -> None:
        twin_after(action, fields, status)
        if action in actions and status == 200:
            seen.append(dict(fields))

    proxy.after = after
    return seen, lambda: setattr(proxy, "after", twin_after)


def state_of(ec2: Any, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def qacct_exit(world: dict[str, Any], job: str) -> str | None:
    out = base.master_sh(world, f"qacct -j {job} 2>/dev/null || true", user="sgeadmin")
    found = re.findall(r"^exit_status\s+(\d+)", out, re.M)
    hosts = re.findall(r"^hostname\s+(\S+)", out, re.M)
    return f"{hosts[-1].split('.')[0]}:{found[-1]}" if found else None


@pytest.fixture(scope="module")
def cluster(twin: dict[str, Any]) -> Iterator[dict[str, Any]]:
    run = base.launch(twin, "launch small with one compute node", compute_count=1)
    base.succeeded(run)
    assert sorted(base.node_ids(twin)) == ["master", "node001"], base.node_ids(twin)
    # Another cluster's compute node002 in the same account (no container: it is only
    # EC2's record), which no pass may touch.
    twin["foreign"] = launch_node(twin["ec2"], "neighbour", "node002", "compute")
    try:
        yield twin
    finally:
        base.play(
            twin, "teardown.yml", {"cluster_name": CLUSTER, "confirm": True, "delete_volumes": True}
        )


def test_scale_up_launches_from_the_clusters_template(cluster: dict[str, Any]) -> None:
    world = cluster
    node001 = sge(world, "qconf -se node001")
    memory = re.search(r"mem_requested=(\d+[KMG]?)", node001)
    assert memory, node001
    fill = sge(
        world,
        f"qsub -terse -b y -j y -o /dev/null -N fill -l mem_requested={memory.group(1)} sleep 3000",
    ).strip()
    for _attempt in range(60):
        if re.search(rf"^\s*{fill}\s.*\s+r\s", sge(world, "qstat -u '*'"), re.M):
            break
        time.sleep(2)
    else:
        pytest.fail(f"the fill job never ran on node001:\n{sge(world, 'qstat -f -u *')}")
    small = sge(
        world, "qsub -terse -b y -j y -o /dev/null -N small -l mem_requested=1G sleep 20"
    ).strip()
    time.sleep(6)  # a few scheduling intervals: it stays pending, node001 is full

    dry = balance(world, dry_run=True)
    base.succeeded(dry)
    compute_type = instances_of(world["ec2"], CLUSTER)[1]["InstanceType"]
    assert f"action: launch 1 x {compute_type}" in dry.output, dry
    assert sorted(base.node_ids(world)) == ["master", "node001"]

    seen, stop = calls_seen(world, {"CreateFleet"})
    began = time.monotonic()
    try:
        run = balance(world)
    finally:
        stop()
    print(f"\nEC2 balance pass that launched node002: {time.monotonic() - began:.0f} s")
    base.succeeded(run)
    assert len(seen) == 1, seen
    template = world["ec2"].describe_launch_templates(
        LaunchTemplateNames=[f"segway-{CLUSTER}-compute-{compute_type}"]
    )["LaunchTemplates"][0]
    spec = "LaunchTemplateConfigs.1.LaunchTemplateSpecification"
    assert seen[0].get(f"{spec}.LaunchTemplateId") == template["LaunchTemplateId"], seen
    assert seen[0].get("Type") == "instant", seen
    nodes = nodes_of(world["ec2"], CLUSTER)
    assert sorted(nodes) == ["master", "node001", "node002"], nodes
    new = tags(nodes["node002"])
    assert new["segway:cluster"] == CLUSTER and new["segway:role"] == "compute", new
    assert nodes["node002"]["InstanceId"] != world["foreign"]
    for _attempt in range(90):
        if result := qacct_exit(world, small):
            break
        time.sleep(2)
    else:
        pytest.fail(f"job {small} did not finish:\n{sge(world, 'qstat -f -u *')}")
    assert result == "node002:0", result
    sge(world, f"qdel {fill}")


def test_scale_down_terminates_only_the_clusters_node(cluster: dict[str, Any]) -> None:
    world = cluster
    ec2 = world["ec2"]
    before = base.node_ids(world)
    assert sorted(before) == ["master", "node001", "node002"], before
    seen, stop = calls_seen(world, {"TerminateInstances"})
    passes = []
    try:
        for _attempt in range(4):
            began = time.monotonic()
            run = balance(world, min_nodes=1)
            passes.append(round(time.monotonic() - began))
            base.succeeded(run)
            plan = re.search(r"TASK \[Print the plan\].*?\n\n", run.output, re.S)
            print(plan.group(0) if plan else run.output[-3000:])
            if len(base.node_ids(world)) == 2:
                break
    finally:
        stop()
    print(f"\nEC2 scale-down passes: {passes} s")
    after = base.node_ids(world)
    if len(after) != 2 or "master" not in after:
        pytest.fail(f"still {sorted(after)} after passes {passes}:\n{run.output[-5000:]}", False)
    gone = next(n for n in before if n not in after)
    terminated = [v for f in seen for k, v in f.items() if k.startswith("InstanceId.")]
    assert terminated == [before[gone]], seen
    assert state_of(ec2, before[gone]) in ("shutting-down", "terminated")
    assert state_of(ec2, world["foreign"]) == "running"
    hosts = sge(world, "qconf -sel").split()
    assert {h.split(".")[0] for h in hosts} - {"master"} == set(after) - {"master"}, hosts
