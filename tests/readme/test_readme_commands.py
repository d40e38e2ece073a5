"""Run the README's "Try it on this machine" commands as written, and check what they do.

README.md marks the block with the line ``<!-- readme-test: local-cluster -->`` right
before its fence. Every command line of the block runs in order in the repository
with bash, exactly as written (``# comments`` are stripped); the test knows what each of
``make cluster``, ``make status`` and ``make cluster-down`` must do and fails on any
other command. Around them it runs ``make cluster`` a second time (every play recap
must say changed=0) and ``make cluster-down`` a second time (a no-op that succeeds), and
at the end removes the kept volumes with DELETE_VOLUMES=true. While the cluster is up it
also checks that a job on node002 reads what the master wrote to /data, and runs
transfer_checks.py (put.yml and fetch.yml round trips, a cut-off upload resumed, refused
paths): one local cluster serves both, to keep make test within its time budget.

Needs root (it starts a Docker engine and builds the node image itself when needed).
Skipped when not root, except in CI (CI=true), where that fails. SEGWAY_README names
another file holding the block; SEGWAY_README_CLUSTER another cluster name (passed to
make as CLUSTER). A cluster of that name that already exists stops the test: it would
be torn down.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from transfer_checks import check_transfers

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- readme-test: local-cluster -->"
README = Path(os.environ.get("SEGWAY_README", REPO / "README.md"))
CLUSTER = os.environ.get("SEGWAY_README_CLUSTER", "segway")
VOLUME_DIR = Path("/var/lib/segway-cluster")
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
COMMAND_TIMEOUT = 2400
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

if os.geteuid() != 0:
    if IN_CI:
        pytest.fail("the README test needs root, and CI runs as root", pytrace=False)
    pytest.skip("the README's local cluster needs root", allow_module_level=True)


def readme_commands(text: str) -> list[str]:
    """The command lines of the fenced block right after the marker."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == MARKER)
    except StopIteration:
        raise AssertionError(f"{README} has no line {MARKER!r} before a fenced block") from None
    rest = lines[start + 1 :]
    while rest and not rest[0].strip():
        rest.pop(0)
    assert rest and rest[0].startswith("```"), f"{MARKER} is not followed by a fenced block"
    commands = []
    for line in rest[1:]:
        if line.startswith("```"):
            return commands
        command = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if command:
            commands.append(command)
    raise AssertionError(f"the block after {MARKER} is not closed")


@dataclass
class Run:
    command: str
    returncode: int
    output: str
    seconds: float

    @property
    def flat(self) -> str:
        return " ".join(self.output.split())

    def changed_tasks(self) -> list[str]:
        """'host: task' for every task result the output reports as changed."""
        found, task = [], "?"
        for line in self.output.splitlines():
            header = re.match(r"TASK \[(.*)\]", line)
            if header:
                task = header[1]
            hit = re.match(r"changed: \[([^\]]+)\]", line)
            if hit:
                found.append(f"{hit[1]}: {task}")
        return found

    def recaps(self) -> list[tuple[str, int, int, int]]:
        return [(m[1], int(m[2]), int(m[3]), int(m[4])) for m in RECAP.finditer(self.output)]

    def __str__(self) -> str:
        return (
            f"$ {self.command}\n(rc={self.returncode}, {self.seconds:.0f} s)\n{self.output[-8000:]}"
        )


def run(command: str, **env: str) -> Run:
    started = time.monotonic()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    full_env.update(CLUSTER=CLUSTER, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **env)
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=REPO,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    result = Run(command, proc.returncode, proc.stdout, time.monotonic() - started)
    print(f"README test: {command!r} took {result.seconds:.0f} s (rc={result.returncode})")
    return result


def docker_lines(*args: str) -> list[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def cluster_containers() -> list[str]:
    return docker_lines("ps", "--all", "--quiet", "--filter", f"label=segway.cluster={CLUSTER}")


def cluster_docker_volumes() -> list[str]:
    return docker_lines("volume", "ls", "--quiet", "--filter", f"label=segway.cluster={CLUSTER}")


def images() -> list[Path]:
    return sorted((VOLUME_DIR / CLUSTER / "volumes").glob("*.img"))


def cluster_loops() -> list[str]:
    proc = subprocess.run(
        ["losetup", "--list", "--noheadings", "-O", "NAME,BACK-FILE"],
        capture_output=True,
        text=True,
        check=True,
    )
    prefix = f"{VOLUME_DIR / CLUSTER}/"
    return [line for line in proc.stdout.splitlines() if prefix in line]


def docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------ what each command does


def check_job_output(result: Run) -> None:
    """The example job ran on a compute node under Segway's 1024M h_vmem, computing its line."""
    out = result.flat
    assert "-w n -j n -l mem_requested=1024M -l h_vmem=1024M -l h_stack=" in out, result
    host = re.search(r"host: (node\d{3})", out)
    assert host, result
    assert "memory limit (ulimit -v): 1048576 KiB" in out, result
    assert "sum of 1..1000000: 500000500000" in out, result
    assert re.search(r"job: \d+ as sgeadmin in /home/sgeadmin/segway-example", out), result


def check_launch(result: Run) -> None:
    assert result.returncode == 0, result
    out = result.flat
    assert f"Cluster {CLUSTER} (local, containers on" in out, result
    assert f"docker exec -it {CLUSTER}-master su - sgeadmin" in out, result
    for node in ("master", "node001", "node002"):
        assert f"{node} {CLUSTER}-{node} private " in out, (node, result)
    assert "Estimated cost: $0.0000 per hour" in out, result
    assert "Submit a job:" in out, result
    check_job_output(result)
    recaps = result.recaps()
    assert recaps and all(unreachable == 0 and failed == 0 for _, _, unreachable, failed in recaps)


def check_status(result: Run) -> None:
    assert result.returncode == 0, result
    out = result.output
    for node in ("master", "node001", "node002"):
        assert re.search(rf"'?\s+{node}\s+(master|compute)\s+{CLUSTER}-{node}\s.*running", out), (
            node,
            result,
        )
    qhost = dict(
        re.findall(r"(node\d{3})\s+lx-amd64[^\n]*\n[^\n]*hc:mem_requested=(\S+?)'?\n", out)
    )
    assert set(qhost) == {"node001", "node002"}, result
    assert "Jobs: 0 running, 0 pending" in out, result
    assert re.search(r"all\.q\s", out), result
    assert all(changed == 0 for _, changed, _, _ in result.recaps()), result


def check_down(result: Run) -> None:
    assert result.returncode == 0, result
    assert f"Cluster {CLUSTER} is torn down." in result.flat, result
    assert cluster_containers() == [], "containers of the cluster are left"
    assert cluster_loops() == [], "loop devices of the cluster are left attached"
    assert [p.name for p in images()] == ["data.img"], "the data volume's image file is gone"
    assert f"{CLUSTER}-home" in cluster_docker_volumes(), "the /home docker volume is gone"


def in_node(node: str, script: str, user: str = "root") -> str:
    argv = ["docker", "exec", f"{CLUSTER}-{node}", "su", "-", user, "-c", script]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{argv}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def check_shared_volume() -> None:
    """/data, the master's volume, is the same filesystem on node002: a job there reads
    what the master wrote, and the master reads what the job wrote (where EC2's compute
    nodes mount the master's NFS export, the local ones mount the same device)."""
    token = f"written on the master {time.time_ns()}"
    in_node("master", f"echo '{token}' > /data/from-master.txt", user="sgeadmin")
    master_dev = in_node("master", "findmnt -n -o MAJ:MIN --mountpoint /data").strip()
    node_dev = in_node("node002", "findmnt -n -o MAJ:MIN --mountpoint /data").strip()
    assert master_dev and node_dev == master_dev, (master_dev, node_dev)
    in_node(
        "master",
        "cd && rm -f shared.out && qsub -sync y -b y -j y -o shared.out -l hostname=node002 "
        "-l mem_requested=100M sh -c 'hostname; cat /data/from-master.txt; "
        "echo written by the job > /data/from-node002.txt'",
        user="sgeadmin",
    )
    out = in_node("master", "cat ~/shared.out", user="sgeadmin").split("\n")
    assert out[:2] == ["node002", token], out
    assert in_node("master", "cat /data/from-node002.txt").strip() == "written by the job"


CHECKS: dict[str, Callable[[Run], None]] = {
    "make cluster": check_launch,
    "make status": check_status,
    "make cluster-down": check_down,
}


@pytest.fixture
def commands() -> list[str]:
    found = readme_commands(README.read_text(encoding="utf-8"))
    unknown = [c for c in found if c not in CHECKS]
    assert not unknown, f"the README block has commands this test does not know: {unknown}"
    missing = [c for c in CHECKS if c not in found]
    assert not missing, f"the README block lacks {missing}"
    return found


@pytest.fixture
def fresh_cluster(commands: list[str]) -> Iterator[None]:
    """No cluster of this name before; nothing of it after (volumes deleted too)."""
    if docker_answers():
        assert cluster_containers() == [], (
            f"a cluster named {CLUSTER} exists; it would be torn down"
        )
    assert not (VOLUME_DIR / CLUSTER).exists(), (
        f"{VOLUME_DIR / CLUSTER} exists; it would be deleted"
    )
    yield
    down = next((c for c in commands if c == "make cluster-down"), None)
    assert down, "the README's local-cluster block lost `make cluster-down`"
    final = run(down, DELETE_VOLUMES="true")
    assert final.returncode == 0, final
    assert cluster_containers() == []
    assert cluster_docker_volumes() == []
    assert images() == []
    assert not (VOLUME_DIR / CLUSTER).exists()


def test_readme_commands_as_written(
    commands: list[str], fresh_cluster: None, tmp_path: Path
) -> None:
    started = time.monotonic()
    for command in commands:
        result = run(command)
        CHECKS[command](result)
        if command == "make cluster":
            check_shared_volume()
            again = run(command)
            assert again.returncode == 0, again
            recaps = again.recaps()
            assert len(recaps) >= 4, again
            busy = [(host, changed) for host, changed, _, _ in recaps if changed]
            assert not busy, (
                f"a second `{command}` changed something: {busy} {again.changed_tasks()}\n{again}"
            )
            check_job_output(again)
            # After the idempotence check: put.yml writes to /data and the home.
            transfers = time.monotonic()
            check_transfers(CLUSTER, tmp_path)
            print(f"README test: put/fetch checks took {time.monotonic() - transfers:.0f} s")
        if command == "make cluster-down":
            again = run(command)
            assert again.returncode == 0, again
            assert f"Cluster {CLUSTER} has nothing left to tear down." in again.flat, again
    print(f"README test: all commands took {time.monotonic() - started:.0f} s")
