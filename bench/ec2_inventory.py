#!/usr/bin/env python3
"""Benchmark: inventory/ec2_segway.py against amazon.aws's aws_ec2 inventory plugin, and
the EC2 API calls playbooks/launch.yml makes, all against one moto_server.

    .venv/bin/python bench/ec2_inventory.py                # 1,000 instances, 16 nodes
    .venv/bin/python bench/ec2_inventory.py --instances 200 --repeat 5

Part 1 seeds one cluster of N running instances (1 master + N-1 compute nodes, tagged
as launch.yml tags them) and times, over the same state, the median wall time of
  - ec2_segway.py --list on its own (a process, as Ansible runs it),
  - ansible-inventory --list over ec2_segway.py,
  - ansible-inventory --list over the aws_ec2 plugin configured to give the same hosts
    and groups (hostnames from segway:node, groups from segway:role / segway:cluster),
and prints the ratio ours / plugin through ansible-inventory (target: <= 1). The three
commands run in turn, round after round, so that other load on the machine hits each
alike; no cache. Ours does more: it also asks DescribeInstanceTypes (vCPUs, memory) and
DescribeVolumes (the master's data volumes).

Part 2 runs launch.yml (configure=false) through a recording proxy for a cluster of
16 compute nodes and one of 2, and prints the EC2 API calls by action side by side
(target: the RunInstances calls do not grow with the node count).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "ec2"))

from ec2_moto import REGION, VENV_BIN, AwsProxy, MotoServer, aws_env, ec2_client  # noqa: E402

SCRIPT = REPO / "inventory" / "ec2_segway.py"
CLUSTER = "bench"
PLUGIN_CONFIG = """\
plugin: amazon.aws.aws_ec2
regions: [{region}]
endpoint_url: {endpoint}
filters:
  "tag:segway:cluster": {cluster}
  instance-state-name: running
hostnames:
  - tag:segway:node
keyed_groups:
  - key: tags['segway:role']
    prefix: ""
    separator: ""
  - key: tags['segway:cluster']
    prefix: cluster
compose:
  ansible_host: public_ip_address
  common_private_ip: private_ip_address
"""


def seed(ec2, count: int) -> None:
    """One cluster of count running instances, tagged and named as launch.yml does."""
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    ids: list[str] = []
    remaining, batch = count, 250
    while remaining:
        n = min(batch, remaining)
        role = "master" if not ids else "compute"
        reservation = ec2.run_instances(
            ImageId=image,
            MinCount=n if role == "compute" else 1,
            MaxCount=n if role == "compute" else 1,
            InstanceType="m7i.large" if role == "master" else "r7i.2xlarge",
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "segway:cluster", "Value": CLUSTER},
                        {"Key": "segway:role", "Value": role},
                    ],
                }
            ],
        )
        got = [i["InstanceId"] for i in reservation["Instances"]]
        ids.extend(got)
        remaining -= len(got)
    for number, instance_id in enumerate(ids):
        node = "master" if number == 0 else f"node{number:03d}"
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "segway:node", "Value": node}])


def timed(commands: dict[str, list[str]], env: dict[str, str], repeat: int) -> dict[str, dict]:
    """Run the commands in turn, repeat rounds (so load on the machine hits each alike);
    per command the median and minimum wall time and the last run's JSON output."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    output: dict[str, dict] = {}
    for _ in range(repeat):
        for name, args in commands.items():
            start = time.perf_counter()
            proc = subprocess.run(
                args, env=env, cwd=REPO, capture_output=True, text=True, check=False, timeout=900
            )
            times[name].append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
            output[name] = json.loads(proc.stdout)
    return {
        name: {
            "median": statistics.median(times[name]),
            "min": min(times[name]),
            "inventory": output[name],
        }
        for name in commands
    }


def hosts_of(inventory: dict, group: str) -> set[str]:
    return set(inventory.get(group, {}).get("hosts", []))


def bench_inventory(moto: MotoServer, count: int, repeat: int, home: Path) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    start = time.perf_counter()
    seed(ec2, count)
    print(f"seeded {count} instances in moto in {time.perf_counter() - start:.1f} s")
    env = aws_env(moto.url, home, ANSIBLE_INVENTORY_CACHE="False")
    env["SEGWAY_CLUSTER"] = CLUSTER
    plugin_file = home / "bench.aws_ec2.yml"
    plugin_file.write_text(PLUGIN_CONFIG.format(region=REGION, endpoint=moto.url, cluster=CLUSTER))
    ansible_inventory = str(VENV_BIN / "ansible-inventory")
    results = timed(
        {
            "ec2_segway.py --list (the script alone)": [sys.executable, str(SCRIPT), "--list"],
            "ansible-inventory --list, ec2_segway.py": [
                ansible_inventory,
                "-i",
                str(SCRIPT),
                "--list",
            ],
            "ansible-inventory --list, amazon.aws.aws_ec2": [
                ansible_inventory,
                "-i",
                str(plugin_file),
                "--list",
            ],
        },
        env,
        repeat,
    )
    alone, ours, plugin = results.values()
    for name, inv in (("ec2_segway.py", ours["inventory"]), ("aws_ec2", plugin["inventory"])):
        masters, computes = hosts_of(inv, "master"), hosts_of(inv, "compute")
        if len(masters) != 1 or len(computes) != count - 1:
            raise SystemExit(f"{name}: {len(masters)} masters, {len(computes)} compute nodes")
    if hosts_of(ours["inventory"], "compute") != hosts_of(plugin["inventory"], "compute"):
        raise SystemExit("the two inventories list different compute nodes")
    if len(alone["inventory"]["_meta"]["hostvars"]) != count:
        raise SystemExit("ec2_segway.py --list missed hosts")

    print(f"\n{count} instances, {repeat} rounds (commands in turn), no cache; median / min")
    for name, result in results.items():
        print(f"  {name:<48} {result['median']:7.2f} s {result['min']:7.2f} s")
    ratio = ours["median"] / plugin["median"]
    print(f"  ratio ours / plugin (through ansible-inventory, medians): {ratio:.2f}  (target <= 1)")


def launch_calls(moto: MotoServer, nodes: int, home: Path, key: Path) -> Counter[str]:
    moto.reset()
    with AwsProxy(moto.url) as proxy:
        env = aws_env(proxy.url, home, ANSIBLE_INVENTORY_CACHE="False")
        extra = {
            "cluster_name": f"calls{nodes}",
            "compute_count": nodes,
            "admin_cidr": "203.0.113.7/32",
            "public_key_file": f"{key}.pub",
            "ami_owner": "099720109477",
            "ami_name": "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*",
            "configure": False,
        }
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
        if proc.returncode != 0:
            raise SystemExit(f"launch.yml failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
        return proxy.counts()


def bench_launch(moto: MotoServer, nodes: int, home: Path) -> None:
    key = home / ".ssh" / "id_bench"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    big = launch_calls(moto, nodes, home, key)
    small = launch_calls(moto, 2, home, key)
    print(f"\nEC2 API calls of launch.yml (configure=false), {nodes} vs 2 compute nodes")
    print(f"  {'action':<40} {nodes:>6} {2:>6}")
    for action in sorted(set(big) | set(small)):
        print(f"  {action:<40} {big[action]:>6} {small[action]:>6}")
    print(f"  {'total':<40} {sum(big.values()):>6} {sum(small.values()):>6}")
    same = big["RunInstances"] == small["RunInstances"]
    print(
        f"  RunInstances: {big['RunInstances']} for {nodes} nodes, {small['RunInstances']} for 2 "
        f"({'independent of the node count' if same else 'GROWS with the node count'})"
    )
    grows = sorted(a for a in big if big[a] > small[a])
    print(f"  calls that grow with the node count: {', '.join(grows) or 'none'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--instances", type=int, default=1000, help="instances to list (1000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of runs (5)")
    parser.add_argument("--nodes", type=int, default=16, help="compute nodes to launch (16)")
    parser.add_argument("--skip-inventory", action="store_true")
    parser.add_argument("--skip-launch", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ec2-") as tmp:
        home = Path(tmp)
        (home / ".ssh").mkdir(mode=0o700)
        moto = MotoServer(log=home / "moto.log").start()
        try:
            if not args.skip_inventory:
                bench_inventory(moto, args.instances, args.repeat, home)
            if not args.skip_launch:
                bench_launch(moto, args.nodes, home)
        finally:
            moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
