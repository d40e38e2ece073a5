#!/usr/bin/env python3
"""Which task of playbooks/launch.yml makes which EC2 (and STS, IAM) call, on moto.

    .venv/bin/python bench/launch_calls.py                  # 16 and 2 compute nodes
    .venv/bin/python bench/launch_calls.py --nodes 16 --out bench/results/launch_calls.txt

Runs launch.yml as scenario 11 of tests/ec2/test_ec2_launch_safety.py does (configure=false,
spot over three types with spot_max_price, the cluster's first launch, its /home and
/segway-build volumes) through the tests' FleetProxy (EC2's refusals and instant fleets),
then the same launch again (the idempotent re-run). A callback plugin notes the time
each task starts and the proxy the time each call is answered; a call belongs to the
last task started before it (the EC2 tasks run on localhost, one at a time). Prints, per
run, each task that made a call with its calls by action, then the totals by action.
"""

from __future__ import annotations

import argparse
import bisect
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "ec2"))

from ec2_fleet import FleetProxy  # noqa: E402
from ec2_moto import VENV_BIN, MotoServer, aws_env, ec2_client, ec2_strict  # noqa: E402
from ec2_testlib import debian_image  # noqa: E402

TYPES = ["m7i.xlarge", "m6i.xlarge", "m7a.xlarge"]
CALLBACK = """\
import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        with open(os.environ["SEGWAY_TASK_TIMES"], "a", encoding="utf-8") as out:
            out.write(json.dumps([time.time(), task.get_name(), task.get_path() or ""]) + "\\n")

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start
"""


def launch(
    moto: MotoServer, cluster: str, nodes: int, home: Path, *, key: Path, image: str
) -> tuple[list[tuple[str, Counter[str]]], Counter[str], int]:
    """One launch.yml run: [(task, calls by action)] in order, the totals, changed."""
    times = home / f"tasks-{cluster}-{time.time_ns()}.jsonl"
    plugins = home / "callbacks"
    plugins.mkdir(exist_ok=True)
    (plugins / "task_times.py").write_text(CALLBACK)
    calls: list[tuple[float, str]] = []

    def after(action: str, fields: object, status: int) -> None:
        calls.append((time.time(), action))

    extra = {
        "cluster_name": cluster,
        "compute_count": nodes,
        "admin_cidr": "203.0.113.7/32",
        "public_key_file": f"{key}.pub",
        "ami_id": image,
        "zone": "us-east-1a",
        "configure": False,
        "compute_types": TYPES,
        "spot": True,
        "spot_max_price": "0.2",
    }
    with FleetProxy(moto.url, refuse=ec2_strict(moto.url), like_ec2=True, after=after) as px:
        env = aws_env(
            px.url,
            home,
            ANSIBLE_CALLBACK_PLUGINS=str(plugins),
            ANSIBLE_CALLBACKS_ENABLED="task_times",
            SEGWAY_TASK_TIMES=str(times),
        )
        proc = subprocess.run(
            [
                str(VENV_BIN / "ansible-playbook"),
                str(REPO / "playbooks" / "launch.yml"),
                "-e",
                json.dumps(extra),
            ],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        totals = px.counts()
    if proc.returncode != 0:
        raise SystemExit(f"launch.yml failed:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}")
    changed = sum(int(x) for x in __import__("re").findall(r"changed=(\d+)", proc.stdout))
    tasks = [json.loads(line) for line in times.read_text().splitlines()]
    starts = [t[0] for t in tasks]
    per_task: list[tuple[str, Counter[str]]] = []
    index_of: dict[int, int] = {}
    for when, action in calls:
        i = bisect.bisect_right(starts, when) - 1
        label = "(before the first task)" if i < 0 else f"{tasks[i][1]}  [{Path(tasks[i][2]).name}]"
        if i not in index_of:
            index_of[i] = len(per_task)
            per_task.append((label, Counter()))
        per_task[index_of[i]][1][action] += 1
    return per_task, totals, changed


def report(title: str, per_task: list[tuple[str, Counter[str]]], totals: Counter[str]) -> str:
    lines = [f"{title}: {sum(totals.values())} calls", ""]
    for label, found in per_task:
        ordered = sorted(found.items(), key=lambda x: (-x[1], x[0]))
        actions = ", ".join(f"{a} {n}" for a, n in ordered)
        lines.append(f"  {sum(found.values()):3}  {label}")
        lines.append(f"       {actions}")
    lines.append("")
    lines.append("  by action:")
    for action, n in sorted(totals.items(), key=lambda x: (-x[1], x[0])):
        lines.append(f"    {action:40} {n}")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[16, 2])
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        home = Path(tmp)
        (home / ".ssh").mkdir(mode=0o700)
        key = home / ".ssh" / "id_bench"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        moto = MotoServer(log=home / "moto.log").start()
        try:
            image = debian_image(ec2_client(moto.url))
            for nodes in args.nodes:
                cluster = f"calls{nodes}"
                first = launch(moto, cluster, nodes, home, key=key, image=image)
                title = f"launch.yml, {nodes} compute nodes, first launch"
                out.append(report(title, first[0], first[1]))
                per_task, totals, changed = launch(moto, cluster, nodes, home, key=key, image=image)
                title = f"launch.yml, {nodes} compute nodes, again (changed={changed})"
                out.append(report(title, per_task, totals))
        finally:
            moto.stop()
    text = "\n".join(out)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
