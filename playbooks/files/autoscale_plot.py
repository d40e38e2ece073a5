"""Plot the autoscaler's passes: ``autoscale_plot.py LOG PNG``.

LOG is sge_autoscale's monitor log (``/var/log/segway-autoscale.log`` on the master, one
JSON record per pass, as playbooks/balance.yml writes it); status.yml -e plot=PNG fetches
it and runs this on the controller. The PNG has four panels over time: compute nodes by
state, busy vs total slots, memory asked for by pending jobs vs free memory, and pending
jobs (waiting and unplaceable among them), with each pass's actions marked. This is what
a Segway user looks at to tune a run's memory requests and the policy. Prints one line
saying what was drawn; exits 2 with a message when the log holds no pass.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

GIB = 1024**3


def read_passes(text: str) -> list[dict]:
    """The log's records in time order; lines that are not a pass record (a line cut
    short while being written) are skipped."""
    passes = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and {"now", "nodes", "pending_jobs"} <= record.keys():
            passes.append(record)
    return sorted(passes, key=lambda record: record["now"])


def series(passes: list[dict]) -> dict[str, list]:
    """The plotted values, one per pass."""
    nodes = [record["nodes"] for record in passes]
    return {
        "time": [datetime.fromtimestamp(record["now"], tz=UTC) for record in passes],
        "busy": [n.get("busy", 0) for n in nodes],
        "idle": [n.get("idle", 0) for n in nodes],
        "draining": [n.get("draining", 0) for n in nodes],
        "starting": [n.get("in_flight", 0) + n.get("new", 0) for n in nodes],
        "slots_used": [record.get("slots_used", 0) for record in passes],
        "slots_total": [record.get("slots_total", 0) for record in passes],
        "pending_gib": [record.get("pending_memory", 0) / GIB for record in passes],
        "free_gib": [record.get("free_memory", 0) / GIB for record in passes],
        "pending": [record.get("pending_jobs", 0) for record in passes],
        "waiting": [record.get("waiting", 0) for record in passes],
        "unplaceable": [record.get("unplaceable", 0) for record in passes],
        "actions": [record.get("actions", []) for record in passes],
    }


def plot(passes: list[dict], out: Path) -> str:
    import matplotlib  # noqa: PLC0415 (only the plot needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    s = series(passes)
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(10, 11), constrained_layout=True)
    nodes, slots, memory, jobs = axes
    nodes.stackplot(
        s["time"],
        s["busy"],
        s["idle"],
        s["draining"],
        s["starting"],
        labels=["busy", "idle", "draining", "starting"],
        step="post",
    )
    nodes.set_ylabel("compute nodes")
    for when, actions in zip(s["time"], s["actions"], strict=True):
        if actions:
            label = ", ".join(
                f"launch {a['count']}" if a["action"] == "launch" else f"{a['action']} {a['host']}"
                for a in actions
            )
            nodes.annotate(label, (when, 0), rotation=90, fontsize=6, va="bottom")
    slots.step(s["time"], s["slots_total"], where="post", label="slots")
    slots.step(s["time"], s["slots_used"], where="post", label="busy slots")
    slots.set_ylabel("slots")
    memory.step(s["time"], s["free_gib"], where="post", label="free mem_requested")
    memory.step(s["time"], s["pending_gib"], where="post", label="asked for by pending jobs")
    memory.set_ylabel("GiB")
    jobs.step(s["time"], s["pending"], where="post", label="pending")
    jobs.step(s["time"], s["waiting"], where="post", label="waiting (caps)")
    jobs.step(s["time"], s["unplaceable"], where="post", label="unplaceable")
    jobs.set_ylabel("jobs")
    jobs.set_xlabel("time (UTC)")
    for axis in axes:
        axis.legend(loc="upper left", fontsize=8)
        axis.grid(alpha=0.3)
    first, last = s["time"][0], s["time"][-1]
    fig.suptitle(f"Autoscaler passes {first:%Y-%m-%d %H:%M} to {last:%H:%M} UTC")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    peak = max(b + i + d + n for b, i, d, n in zip(s["busy"], s["idle"], s["draining"],
                                                   s["starting"], strict=True))  # fmt: skip
    return (
        f"{out}: {len(passes)} passes from {first:%Y-%m-%dT%H:%M:%SZ} to "
        f"{last:%Y-%m-%dT%H:%M:%SZ}, at most {peak} compute nodes, "
        f"at most {max(s['pending'])} pending jobs"
    )


def main(argv: list[str]) -> int:
    try:
        _program, log_arg, out_arg = argv
    except ValueError:
        print(f"usage: {argv[0]} LOG PNG", file=sys.stderr)
        return 2
    log, out = Path(log_arg), Path(out_arg)
    passes = read_passes(log.read_text())
    if not passes:
        print(f"{log} holds no autoscaler pass: run playbooks/balance.yml first", file=sys.stderr)
        return 2
    print(plot(passes, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
