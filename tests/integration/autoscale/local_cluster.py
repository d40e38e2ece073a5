"""What the autoscaler's tests do on a real local cluster (containers on this machine):
run commands and playbooks, ask its Grid Engine, read its accounting, launch it for a
test module and tear it down. test_balance_local.py and test_spot_replacement_local.py
each use one cluster of their own name (a ``LocalCluster``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
PLAYBOOKS = REPO / "playbooks"
SGE_ENV = ["-e", "SGE_ROOT=/var/lib/gridengine", "-e", "SGE_CELL=default"]


def run(*argv: str, timeout: int = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def playbook(
    name: str, extra: Mapping[str, Any], timeout: int = 1500
) -> subprocess.CompletedProcess:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOKS / name)]
    return subprocess.run(
        [*argv, "-e", json.dumps(extra)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode != 0:
        pytest.fail(
            f"{proc.args[:2]} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}", pytrace=False
        )
    return proc.stdout


def epoch(qacct_time: str) -> float:
    return time.mktime(time.strptime(qacct_time, "%a %b %d %H:%M:%S %Y"))


class LocalCluster:
    """The local cluster `name`: its master container is <name>-master."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.master = f"{name}-master"

    def sge(self, *argv: str, check: bool = True) -> str:
        """A Grid Engine command on the master as the cluster user, in its (shared) home."""
        args = ["docker", "exec", "-u", "sgeadmin", "-w", "/home/sgeadmin", *SGE_ENV,
                self.master, *argv]  # fmt: skip
        return run(*args, check=check).stdout

    def qsub(self, memory: str, seconds: int, name: str, *options: str) -> str:
        out = self.sge("qsub", "-terse", "-b", "y", "-j", "y", "-o", "/dev/null", "-N", name,
                       "-l", f"mem_requested={memory}", *options,
                       "sleep", str(seconds))  # fmt: skip
        return out.strip().split(".")[0]

    def compute_containers(self, running: bool = False) -> list[str]:
        """The cluster's compute node containers (every one, or the running ones)."""
        out = run(
            "docker",
            "ps",
            *([] if running else ["-a"]),
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=segway.cluster={self.name}",
        )
        return sorted(
            n.removeprefix(f"{self.name}-") for n in out.stdout.split() if n != self.master
        )

    def qacct_records(self, job: str) -> list[dict[str, str]]:
        """qacct's records of a job, each key -> value, oldest first; [] until it ended (a
        rescheduled job has one more: the run that was cut short, failed 25)."""
        got = run(*["docker", "exec", "-u", "sgeadmin", *SGE_ENV, self.master, "qacct", "-j",
                    job], check=False)  # fmt: skip
        if got.returncode != 0:
            return []
        return [
            {
                line.split(None, 1)[0]: line.split(None, 1)[1].strip()
                for line in chunk.splitlines()
                if " " in line.strip()
            }
            for chunk in re.split(r"^=+$", got.stdout, flags=re.M)
            if chunk.strip()
        ]

    @contextmanager
    def launched(self, base: Mapping[str, Any], compute_count: int) -> Iterator[None]:
        """Start the Docker engine, build the node image, launch the cluster (refusing one
        that exists already) and tear it down, volumes and all, however the tests end."""
        started = run(str(REPO / "harness" / "ensure_docker.sh"), check=False, timeout=300)
        if started.returncode != 0:
            pytest.fail(f"no Docker engine: {started.stderr.strip()[-500:]}", pytrace=False)
        run(str(REPO / "harness" / "build_image.sh"), timeout=1800)
        assert (
            not self.compute_containers()
            and not run("docker", "ps", "-aq", "--filter", f"name={self.master}").stdout
        ), f"a cluster {self.name} exists already; tear it down first"
        try:
            ok(playbook("launch.yml", {**base, "compute_count": compute_count}))
            yield
        finally:
            playbook("teardown.yml", {**base, "confirm": True, "delete_volumes": True}, timeout=600)
