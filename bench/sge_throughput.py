#!/usr/bin/env python3
"""Throughput of many short jobs: the sge role's scheduler settings against Debian's.

Runs on a converged test cluster (molecule converge, or launch.yml -e provider=local):
on the master container it submits N jobs (each `/bin/true`, as the cluster user),
times submit-to-all-done, once with Debian's stock scheduler configuration and once
with roles/sge's `sge_scheduler` (read from roles/sge/defaults/main.yml), then restores
the configuration it found and prints both times and their ratio.

    .venv/bin/python bench/sge_throughput.py --container segway-molecule-default-master -n 300

Target (issue 4): the role's settings at least 5x faster than Debian's.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = "SGE_ROOT=/var/lib/gridengine SGE_CELL=default"
# Debian's gridengine 8.1.9 as installed: init_cluster's scheduler configuration.
DEBIAN_SCHEDULER = {
    "schedule_interval": "0:0:15",
    "flush_submit_sec": "0",
    "flush_finish_sec": "0",
    "job_load_adjustments": "np_load_avg=0.50",
    "load_adjustment_decay_time": "0:7:30",
    "schedd_job_info": "true",
    "max_reservation": "0",
}

log = logging.getLogger("sge_throughput")


def sh(container: str, command: str, user: str | None = None) -> str:
    """Run a shell command on the master container; return stdout."""
    argv = ["docker", "exec", "-i", container]
    if user:
        argv += ["runuser", "-u", user, "--"]
    argv += ["bash", "-c", f"export {ENV}; {command}"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def role_scheduler() -> dict[str, str]:
    defaults = yaml.safe_load((REPO / "roles/sge/defaults/main.yml").read_text())
    return {key: str(value) for key, value in defaults["sge_scheduler"].items()}


def apply_scheduler(container: str, base: str, settings: dict[str, str]) -> None:
    lines = []
    for line in base.splitlines():
        key = line.split(" ", 1)[0]
        lines.append(f"{key} {settings[key]}" if key in settings else line)
    with tempfile.NamedTemporaryFile("w", suffix=".sconf", delete=False) as stream:
        stream.write("\n".join(lines) + "\n")
        local = stream.name
    subprocess.run(["docker", "cp", local, f"{container}:/tmp/bench.sconf"], check=True)
    Path(local).unlink()
    sh(container, "qconf -Msconf /tmp/bench.sconf >/dev/null")


def run_batch(container: str, user: str, jobs: int, timeout: float) -> float:
    """Submit `jobs` jobs of /bin/true; seconds until the last one has left the queue."""
    if sh(container, f"qstat -u {user}", user).strip():
        raise RuntimeError(f"{user} already has jobs queued; the benchmark needs an idle cluster")
    start = time.monotonic()
    sh(
        container,
        f"for i in $(seq {jobs}); do qsub -b y -o /dev/null -e /dev/null -l mem_requested=100M "
        f"-N bench /bin/true >/dev/null; done",
        user,
    )
    submitted = time.monotonic() - start
    log.info("submitted %d jobs in %.1f s", jobs, submitted)
    while sh(container, f"qstat -u {user}", user).strip():
        if time.monotonic() - start > timeout:
            sh(container, f"qdel -u {user} >/dev/null 2>&1 || true")
            raise RuntimeError(f"jobs still queued after {timeout:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--container",
        default="segway-molecule-default-master",
        help="master container of a converged test cluster",
    )
    parser.add_argument("-n", "--jobs", type=int, default=300, help="jobs per run (default 300)")
    parser.add_argument("--user", default="sgeadmin", help="cluster user that submits")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    original = sh(args.container, "qconf -ssconf")
    results = {}
    try:
        for label, settings in (("debian", DEBIAN_SCHEDULER), ("role", role_scheduler())):
            apply_scheduler(args.container, original, settings)
            time.sleep(3)  # let the scheduler pick the configuration up
            results[label] = run_batch(args.container, args.user, args.jobs, args.timeout)
            log.info("%s settings: %d jobs done in %.1f s", label, args.jobs, results[label])
    finally:
        apply_scheduler(args.container, original, {})
    print(
        f"jobs={args.jobs} debian={results['debian']:.1f}s role={results['role']:.1f}s "
        f"speedup={results['debian'] / results['role']:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
