"""A spot interruption notice on a real local cluster: the spot watcher takes the node out
of Grid Engine, and playbooks/balance.yml launches a replacement where the job reruns.

A local cluster (containers on this machine, real systemd and Grid Engine) of a master
and two compute nodes whose mem_requested is 2G, launched with the spot watcher
(roles/sge, segway-spot-watch.service) on every compute node pointed at a fake IMDSv2
(tests/fake_imds.py) on 127.0.0.1:1338 inside the node, as molecule's scenario does:

1. The watcher runs on node001 and node002 (not on the master), as the cluster user,
   with that endpoint. The fake IMDS starts in each node only after launch: the watcher
   logged the missing IMDS and reaches it once it answers.
2. Two jobs of 1.5G, more than half a node, one per node: a long one held to node001
   (-l hostname=node001, so node001 stays full) and the one that then lands on node002.
3. node002's fake IMDS gives notice of a spot interruption (terminate, two minutes
   ahead). Within a minute its queue instance is disabled and its job is back to pending
   under the same job id (the watcher's qmod -d and -rq, run on the master over SSH); it
   fits nowhere (node001 is full, node002 disabled).
4. One balance.yml pass plans `launch 1 x local` for it (a disabled queue instance is no
   capacity), launch.yml adds node003 (with the spot watcher too: the same extra vars;
   node003 has no fake IMDS, and its watcher keeps running), the job reruns there, whole,
   to exit 0 (it may start before the pass ends: Grid Engine uses node003 once it is
   registered, while launch.yml configures on), Grid Engine's accounting keeps the run
   cut short on node002 (failed 25 : rescheduling), and node002 stays disabled.
5. EC2 would then terminate node002: its container is killed. The next pass finds it
   gone and removes it (qconf -sel, qhost, docker), node001 and node003 stay.

What is not real: EC2 (the IMDS is the fake, the interruption a docker kill) and the
nodes' size (local_mem_requested). Needs root and a Docker engine (started by
harness/ensure_docker.sh). The measured times are printed (pytest -s shows them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from local_cluster import REPO, LocalCluster, epoch, ok, playbook, run

CLUSTER = "spottest"
LOCAL = LocalCluster(CLUSTER)
MASTER = LOCAL.master
sge, qsub, qacct_records = LOCAL.sge, LOCAL.qsub, LOCAL.qacct_records
compute_containers = LOCAL.compute_containers
IMDS = "http://127.0.0.1:1338"
# The spot watcher on every compute node, launch's and balance's (a pass that launches
# runs launch.yml with the extra vars it was given, so the replacement gets it too).
SPOT_WATCH = {"sge_spot_watch": True, "sge_spot_watch_endpoint": IMDS}
BASE = {
    "provider": "local",
    "cluster_name": CLUSTER,
    "size": "small",
    "local_mem_requested": "2G",
    **SPOT_WATCH,
}
POLICY = {"max_nodes": 4, "idle_minutes": 5, "drain_settle_seconds": 5}
WATCH_UNIT = "segway-spot-watch.service"
# node001's job holds it full until the rerun has started on node003 (then it is
# deleted); node002's job outlasts the notice and runs again, whole, on node003.
BLOCKER_SECONDS = 1800
VICTIM_SECONDS = 240

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: starts containers"),
    # Not in make test: a launch and two passes, about 15 minutes on 2 cores.
    pytest.mark.skipif(
        os.environ.get("SEGWAY_BALANCE_TEST") != "1",
        reason="opt-in (SEGWAY_BALANCE_TEST=1): launches a local cluster, not part of make test",
    ),
]


def on(node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """A command as root in a node's container."""
    return run("docker", "exec", f"{CLUSTER}-{node}", *argv, check=check)


def job_state(job: str) -> tuple[str, str] | None:
    """A job's state letters and queue instance ('' while pending) in qstat; None once
    it left qstat. A rescheduled job is Rq while it waits and Rr once it runs again."""
    for line in sge("qstat", "-u", "*").splitlines():
        fields = line.split()
        if fields and fields[0] == job:
            queue = next((word for word in fields if "@" in word), "")
            return fields[4], queue
    return None


def queue_states(instance: str) -> str | None:
    """The state letters of a queue instance ('' if none), None if qstat -f has none."""
    for line in sge("qstat", "-f", "-q", instance, check=False).splitlines():
        fields = line.split()
        if fields and fields[0] == instance:
            return fields[5] if len(fields) > 5 else ""
    return None


def wait_running(job: str, timeout: float) -> str:
    """The queue instance a job runs in, once it runs."""
    deadline = time.monotonic() + timeout
    while True:
        state = job_state(job)
        if state and "r" in state[0]:
            return state[1]
        assert time.monotonic() < deadline, (
            f"job {job} not running after {timeout:.0f} s:\n{sge('qstat', '-u', '*', '-f')}"
        )
        time.sleep(2)


def imds_control(node: str, method: str, path: str, body: dict | None = None) -> str:
    """A request to the control API of the fake IMDS in a node (from inside the node:
    it listens on the node's own 127.0.0.1), its status and body."""
    script = (
        "import sys, urllib.request as u\n"
        "data = sys.argv[3].encode() if len(sys.argv) > 3 else None\n"
        "req = u.Request(sys.argv[1], data=data, method=sys.argv[2],"
        " headers={'Content-Type': 'application/json'})\n"
        "with u.urlopen(req, timeout=5) as r: print(r.status, r.read().decode())\n"
    )
    argv = ["python3", "-c", script, f"{IMDS}/_fake/{path}", method]
    return on(node, *argv, *([json.dumps(body)] if body is not None else [])).stdout.strip()


def start_fake_imds(node: str) -> None:
    """tests/fake_imds.py as a transient systemd service in the node, and wait for it."""
    run("docker", "cp", str(REPO / "tests" / "fake_imds.py"),
        f"{CLUSTER}-{node}:/usr/local/lib/fake_imds.py")  # fmt: skip
    on(node, "systemd-run", "--unit", "fake-imds", "--collect", "/usr/bin/python3",
       "/usr/local/lib/fake_imds.py", "--host", "127.0.0.1", "--port", "1338")  # fmt: skip
    url = f"{IMDS}/_fake/requests"
    deadline = time.monotonic() + 30
    while True:
        probe = on(node, "python3", "-c", f"import urllib.request as u; u.urlopen('{url}')",
                   check=False)  # fmt: skip
        if probe.returncode == 0:
            return
        assert time.monotonic() < deadline, (
            f"fake IMDS in {node} does not answer: {probe.stderr[-500:]}\n"
            + on(node, "systemctl", "status", "fake-imds", check=False).stdout
        )
        time.sleep(1)


def watcher_log(node: str) -> str:
    return on(node, "journalctl", "-u", WATCH_UNIT, "--no-pager", "-o", "cat", check=False).stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict]:
    """The launched cluster, and what one test leaves the next (job ids, times)."""
    began = time.monotonic()
    with LOCAL.launched(BASE, compute_count=2):
        print(f"\nlaunch of {CLUSTER} (master + 2 compute nodes): {time.monotonic() - began:.0f} s")
        yield {}


def test_the_watcher_runs_on_each_compute_node_and_reaches_its_fake_imds(cluster: dict) -> None:
    assert compute_containers(running=True) == ["node001", "node002"]
    for node in ("node001", "node002"):
        unit = on(node, "systemctl", "show", WATCH_UNIT, "-p", "ActiveState", "-p", "User",
                  "-p", "UnitFileState", "-p", "Environment").stdout  # fmt: skip
        assert "ActiveState=active" in unit and "User=sgeadmin" in unit, (node, unit)
        assert "UnitFileState=enabled" in unit, (node, unit)
        assert f"AWS_EC2_METADATA_SERVICE_ENDPOINT={IMDS}" in unit, (node, unit)
        unit_file = on(node, "systemctl", "cat", WATCH_UNIT).stdout
        assert f"--host {node} " in unit_file, unit_file
    # The master is no compute node: no watcher there, although the vars reached it.
    master_unit = run("docker", "exec", MASTER, "systemctl", "show", WATCH_UNIT, "-p",
                      "LoadState", "-p", "ActiveState").stdout  # fmt: skip
    assert "LoadState=not-found" in master_unit, master_unit

    # The watchers started before any IMDS answered (configure ran them): each logged
    # that, polls on, and finds the fake IMDS once it runs.
    for node in ("node001", "node002"):
        before = watcher_log(node)
        assert f"endpoint={IMDS}" in before and "IMDS error" in before, (node, before)
        start_fake_imds(node)
    for node in ("node001", "node002"):
        deadline = time.monotonic() + 60
        while f"IMDS reachable again at {IMDS}" not in (log := watcher_log(node)):
            assert time.monotonic() < deadline, (node, log)
            time.sleep(2)
        requests = json.loads(imds_control(node, "GET", "requests").split(" ", 1)[1])
        assert any(r["path"] == "/latest/meta-data/spot/instance-action" for r in requests), (
            node,
            requests,
        )
    cluster["imds"] = True


def test_a_spot_notice_disables_node002_and_reschedules_its_job(cluster: dict) -> None:
    assert cluster.get("imds"), "needs the fake IMDS of the test before"
    node001 = sge("qconf", "-se", "node001")
    assert "mem_requested=2048M" in node001, node001  # local_mem_requested=2G
    blocker = qsub("1536M", BLOCKER_SECONDS, "blocker", "-l", "hostname=node001")
    assert wait_running(blocker, 90) == "all.q@node001"
    submitted = time.time()
    victim = qsub("1536M", VICTIM_SECONDS, "victim")
    # 1.5G of node001's 2G are taken: the victim can only go to node002.
    assert wait_running(victim, 90) == "all.q@node002", sge("qstat", "-u", "*", "-f")
    print(f"victim {victim} running on node002 {time.time() - submitted:.0f} s after submit")

    notice_time = datetime.fromtimestamp(time.time() + 120, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = imds_control(
        "node002", "PUT", "spot/instance-action", {"action": "terminate", "time": notice_time}
    )
    assert answer.split()[0] in ("200", "204"), answer
    noticed = time.monotonic()

    disabled_after = rescheduled_after = None
    while disabled_after is None or rescheduled_after is None:
        elapsed = time.monotonic() - noticed
        assert elapsed < 60, (
            f"after 60 s: disabled {disabled_after}, rescheduled {rescheduled_after}\n"
            f"{sge('qstat', '-u', '*', '-f')}\n{watcher_log('node002')}"
        )
        if disabled_after is None and "d" in (queue_states("all.q@node002") or ""):
            disabled_after = elapsed
        state = job_state(victim)
        if rescheduled_after is None and state and state[1] == "" and state[0] == "Rq":
            rescheduled_after = elapsed
        time.sleep(1)
    print(f"notice -> all.q@node002 disabled: {disabled_after:.0f} s")
    print(f"notice -> victim {victim} pending again: {rescheduled_after:.0f} s")

    # Still pending a while later: it fits nowhere (node001 full, node002 disabled), and
    # node001 keeps its job. node002's watcher did it, node001's did nothing.
    time.sleep(15)
    qstat = sge("qstat", "-u", "*", "-f")
    state = job_state(victim)
    assert state == ("Rq", ""), (state, qstat)
    assert job_state(blocker) == ("r", "all.q@node001"), qstat
    assert "d" in (queue_states("all.q@node002") or ""), qstat
    assert "d" not in (queue_states("all.q@node001") or "x"), qstat
    log002 = watcher_log("node002")
    assert f"notice: spot-interruption action=terminate time={notice_time}" in log002, log002
    assert re.search(r"segway-qmod-on-master -d node002 rc=0", log002), log002
    assert re.search(r"segway-qmod-on-master -rq node002 rc=0", log002), log002
    assert "handled: spot-interruption" in log002, log002
    assert "notice:" not in watcher_log("node001"), watcher_log("node001")
    print(f"victim {victim} qacct before the pass: {qacct_records(victim)}")
    cluster.update(victim=victim, blocker=blocker, submitted=submitted)


def test_a_pass_launches_a_replacement_where_the_job_reruns(cluster: dict) -> None:
    assert "victim" in cluster, "needs the rescheduled job of the test before"
    victim, blocker = cluster["victim"], cluster["blocker"]
    began = time.monotonic()
    out = ok(playbook("balance.yml", {**BASE, **POLICY}))
    took = time.monotonic() - began
    pass_ended = time.time()
    print(f"balance pass that launched the replacement: {took:.0f} s")
    assert "action: launch 1 x local" in out, out
    assert "lost host" not in out, out  # node002 still runs: not gone, only disabled
    assert compute_containers(running=True) == ["node001", "node002", "node003"]
    exec_hosts = sge("qconf", "-sel").split()
    assert {"node001", "node002", "node003"} <= {h.split(".")[0] for h in exec_hosts}, exec_hosts

    # The pass and launch.yml's configure of every node left node002 disabled.
    assert "enable node002" not in out, out
    assert "d" in (queue_states("all.q@node002") or ""), sge("qstat", "-f")

    # node003 takes the job as soon as Grid Engine has it, while launch.yml still
    # configures the rest: the rerun may be running, or even over, when the pass ends.
    deadline = time.monotonic() + 180
    while (state := job_state(victim)) is None or "r" not in state[0]:
        if state is None and qacct_records(victim)[1:]:
            break
        assert time.monotonic() < deadline, (
            f"job {victim} neither runs nor reran 180 s after the pass:\n"
            f"{sge('qstat', '-u', '*', '-f')}\n{qacct_records(victim)}"
        )
        time.sleep(2)
    assert state is None or state == ("Rr", "all.q@node003"), sge("qstat", "-u", "*", "-f")
    sge("qdel", blocker)  # node001 was held full only to leave the job nowhere else

    # node003 got the watcher too; it has no fake IMDS, and its watcher keeps polling.
    unit = on("node003", "systemctl", "show", WATCH_UNIT, "-p", "ActiveState", "-p",
              "Environment").stdout  # fmt: skip
    assert "ActiveState=active" in unit and IMDS in unit, unit
    assert "IMDS error" in watcher_log("node003"), watcher_log("node003")

    deadline = time.monotonic() + VICTIM_SECONDS + 180
    while True:
        records = qacct_records(victim)
        finished = [rec for rec in records if rec.get("failed", "").split()[:1] == ["0"]]
        if finished:
            break
        assert time.monotonic() < deadline, (records, sge("qstat", "-u", "*", "-f"))
        time.sleep(3)
    print(f"victim {victim}: qacct records {[(r['hostname'], r['failed']) for r in records]}")
    # Two records: the run the notice cut short on node002, written by qmaster when the
    # watcher's qmod -rq rescheduled it (failed 25, no start time), and the whole rerun.
    assert len(records) == 2, records
    cut, rerun = records
    assert cut["hostname"] == "node002", cut
    assert " ".join(cut["failed"].split()) == "25 : rescheduling", cut
    assert rerun["hostname"] == "node003" and rerun["exit_status"].split()[0] == "0", rerun
    started = epoch(rerun["start_time"])
    ran = epoch(rerun["end_time"]) - started
    assert ran >= VICTIM_SECONDS - 1, rerun  # the whole job again, not a resumed rest
    print(f"submit -> rerun start on node003: {started - cluster['submitted']:.0f} s "
          f"({started - pass_ended:+.0f} s from the end of the pass)")  # fmt: skip
    assert "d" in (queue_states("all.q@node002") or ""), sge("qstat", "-f")


def test_the_next_pass_removes_node002_once_it_is_terminated(cluster: dict) -> None:
    assert "victim" in cluster, "needs the tests before"
    assert compute_containers(running=True) == ["node001", "node002", "node003"]
    run("docker", "kill", f"{CLUSTER}-node002")
    began = time.monotonic()
    out = ok(playbook("balance.yml", {**BASE, **POLICY}))
    print(f"balance pass that removed the terminated node002: {time.monotonic() - began:.0f} s")
    assert "lost host node002: its container or instance is gone" in out, out
    assert "action: launch" not in out, out  # nothing was running there
    assert compute_containers() == ["node001", "node003"]
    exec_hosts = [h.split(".")[0] for h in sge("qconf", "-sel").split()]
    assert sorted(exec_hosts) == ["node001", "node003"], exec_hosts
    qhost = sge("qhost")
    assert "node002" not in qhost and "node001" in qhost and "node003" in qhost, qhost
    assert queue_states("all.q@node002") is None, sge("qstat", "-f")
