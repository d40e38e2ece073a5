#!/usr/bin/env python3
"""The autoscaler on a local cluster: time to a new node, node-minutes against a static cluster.

Launches its own local cluster (containers on this machine, real Grid Engine, each
compute node's mem_requested set to --node-memory so memory decides what fits), runs
playbooks/balance.yml passes every --every seconds from this machine (as make balance
does) and measures:

1. Submit-to-start of a job that needs a new node: node001 runs a job that fills it, a
   second such job is submitted, and the passes launch a node for it.
2. A bursty workload (bursts of --burst jobs of --job-memory for --job-seconds each,
   --gap seconds apart): the compute nodes are sampled every 5 s from docker, giving
   the node-minutes the autoscaled cluster used from the first submit until every job
   ended and the cluster was back to min_nodes (1); a static cluster of the peak size
   would have used peak x that time. Also each job's wait (qacct start - submit).
3. The plot of the run (status.yml -e plot=), next to the JSON results in --out.

    .venv/bin/python bench/autoscale.py --out bench/results/autoscale

Needs root and the Docker engine (harness/ensure_docker.sh) and takes 20-30 minutes.
The cluster (--cluster, default benchscale) is torn down at the end, also on failure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SGE_ENV = ["-e", "SGE_ROOT=/var/lib/gridengine", "-e", "SGE_CELL=default"]

log = logging.getLogger("autoscale")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cluster = args.cluster
        self.master = f"{args.cluster}-master"
        self.base = {
            "provider": "local",
            "cluster_name": args.cluster,
            "size": "small",
            "local_mem_requested": args.node_memory,
        }
        self.policy = {
            "min_nodes": 1,
            "max_nodes": args.max_nodes,
            "idle_minutes": args.idle_minutes,
            "drain_settle_seconds": 5,
        }
        self.samples: list[tuple[float, int]] = []
        self.pass_seconds: list[float] = []

    # ------------------------------------------------------------------ helpers

    def playbook(self, name: str, extra: dict) -> str:
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), f"playbooks/{name}"]
        proc = subprocess.run(
            [*argv, "-e", json.dumps(extra)],
            cwd=REPO,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-1000:]}")
        return proc.stdout

    def sge(self, *argv: str, check: bool = True) -> str:
        cmd = ["docker", "exec", "-u", "sgeadmin", "-w", "/home/sgeadmin", *SGE_ENV, self.master]
        proc = subprocess.run([*cmd, *argv], capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
        return proc.stdout

    def qsub(self, memory: str, seconds: int, name: str) -> tuple[str, float]:
        out = self.sge("qsub", "-terse", "-b", "y", "-j", "y", "-o", "/dev/null", "-N", name,
                       "-l", f"mem_requested={memory}", "sleep", str(seconds))  # fmt: skip
        return out.strip().split(".")[0], time.time()

    def compute_nodes(self) -> int:
        out = subprocess.run(
            ["docker", "ps", "--format", "{{.Names}}",
             "--filter", f"label=segway.cluster={self.cluster}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return sum(1 for name in out.split() if name != self.master)

    def start_time(self, job: str) -> float | None:
        """When the job started, from qacct once it ended, else from qstat while it runs."""
        done = self.sge("qacct", "-j", job, check=False)
        for chunk in re.split(r"^=+$", done, flags=re.M):
            fields = dict(line.split(None, 1) for line in chunk.splitlines() if " " in line.strip())
            if fields.get("failed", "").split()[:1] == ["0"]:
                return time.mktime(
                    time.strptime(fields["start_time"].strip(), "%a %b %d %H:%M:%S %Y")
                )
        running = self.sge("qstat", "-s", "r", "-u", "*")
        for line in running.splitlines():
            words = line.split()
            if words and words[0] == job:
                return time.mktime(time.strptime(f"{words[5]} {words[6]}", "%m/%d/%Y %H:%M:%S"))
        return None

    def one_pass(self) -> None:
        began = time.monotonic()
        self.playbook("balance.yml", {**self.base, **self.policy})
        self.pass_seconds.append(time.monotonic() - began)

    def sampler(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.samples.append((time.time(), self.compute_nodes()))
            stop.wait(5)

    # ------------------------------------------------------------------ parts

    def new_node_latency(self) -> float:
        """Submit-to-start of a job that only fits on a node the passes must launch."""
        mem = self.args.job_memory
        first = self.qsub(mem, 3600, "fill")[0]
        deadline = time.monotonic() + 120
        while self.start_time(first) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the first job never started on node001")
            time.sleep(2)
        job, submitted = self.qsub(mem, 30, "needs-a-node")
        deadline = time.monotonic() + 1800
        while (started := self.start_time(job)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job} never started")
            self.one_pass()
        self.sge("qdel", first)
        return started - submitted

    def bursty(self) -> dict:
        args = self.args
        jobs: dict[str, float] = {}
        first_submit = time.time()
        for burst in range(args.bursts):
            for i in range(args.burst):
                job, when = self.qsub(args.job_memory, args.job_seconds, f"b{burst}-{i}")
                jobs[job] = when
            log.info("burst %d: %d jobs submitted", burst + 1, args.burst)
            deadline = time.monotonic() + args.gap
            while time.monotonic() < deadline:
                self.one_pass()
                time.sleep(max(0.0, min(args.every, deadline - time.monotonic())))
        # Until every job ended and the cluster is back to min_nodes.
        deadline = time.monotonic() + 3600
        while True:
            pending = self.sge("qstat", "-u", "*").strip()
            if not pending and self.compute_nodes() == 1:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workload did not end:\n{pending}")
            self.one_pass()
            time.sleep(args.every)
        ended = time.time()
        waits = sorted((self.start_time(job) or ended) - when for job, when in jobs.items())
        window = [(t, n) for t, n in self.samples if first_submit <= t <= ended]
        node_minutes = sum(n * (t2 - t1) for (t1, n), (t2, _n2) in itertools.pairwise(window)) / 60
        peak = max(n for _t, n in window)
        static = peak * (ended - first_submit) / 60
        return {
            "jobs": len(jobs),
            "minutes": round((ended - first_submit) / 60, 1),
            "peak_nodes": peak,
            "node_minutes_autoscaled": round(node_minutes, 1),
            "node_minutes_static_peak": round(static, 1),
            "saved_fraction": round(1 - node_minutes / static, 3) if static else 0.0,
            "wait_seconds": {
                "median": round(waits[len(waits) // 2], 1),
                "max": round(waits[-1], 1),
            },
        }

    def run(self) -> dict:
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(REPO / "harness" / "ensure_docker.sh")], check=True)
        subprocess.run([str(REPO / "harness" / "build_image.sh")], check=True)
        stop = threading.Event()
        sampler = threading.Thread(target=self.sampler, args=(stop,), daemon=True)
        try:
            self.playbook("launch.yml", {**self.base, "compute_count": 1})
            sampler.start()
            latency = self.new_node_latency()
            log.info("submit-to-start of a job that needs a new node: %.0f s", latency)
            # Back to one node before the workload.
            while self.compute_nodes() > 1:
                self.one_pass()
                time.sleep(self.args.every)
            self.samples.clear()
            results = {
                "new_node_submit_to_start_seconds": round(latency, 1),
                "bursty": self.bursty(),
                "balance_pass_seconds": {
                    "median": round(sorted(self.pass_seconds)[len(self.pass_seconds) // 2], 1),
                    "max": round(max(self.pass_seconds), 1),
                    "passes": len(self.pass_seconds),
                },
                "settings": vars(self.args),
            }
            png = (out / "autoscale.png").resolve()
            self.playbook("status.yml", {**self.base, "plot": str(png)})
            results["plot"] = str(png)
            (out / "autoscale.json").write_text(json.dumps(results, indent=2) + "\n")
            return results
        finally:
            stop.set()
            self.playbook("teardown.yml", {**self.base, "confirm": True, "delete_volumes": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--cluster", default="benchscale", help="local cluster name")
    parser.add_argument("--out", default="bench/results/autoscale", help="results directory")
    parser.add_argument("--node-memory", default="2G", help="each node's mem_requested")
    parser.add_argument("--job-memory", default="1536M", help="each job's mem_requested")
    parser.add_argument("--job-seconds", type=int, default=120, help="each job's run time")
    parser.add_argument("--bursts", type=int, default=2, help="bursts of jobs")
    parser.add_argument("--burst", type=int, default=4, help="jobs per burst")
    parser.add_argument("--gap", type=int, default=420, help="seconds between bursts")
    parser.add_argument("--every", type=float, default=20, help="seconds between passes")
    parser.add_argument("--max-nodes", type=int, default=6, help="policy max_nodes")
    parser.add_argument("--idle-minutes", type=float, default=1, help="policy idle_minutes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results = Bench(args).run()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
