"""How many AWS calls launch.yml makes, counted at the proxy (issue 17).

playbooks/launch.yml provisions a cluster on moto_server through ``FleetProxy``
(ec2_fleet.py), which counts every EC2, IAM and STS call by its ``Action`` and launches a
fleet's instances as EC2 does. Provisioning only: configure=false, the switch every EC2
test uses, stops before waiting for SSH and configure.yml. Two clusters are launched at
the same time, each through a proxy of its own, with the inputs of the issue's
measurement: 2 and 16 compute nodes on spot over three instance types, an imported key,
the cluster's own /home and /segway-build volumes. ``pytest -s`` prints each launch's
calls, Action by Action.

Issue 17's target is at most 40 calls for 16 compute nodes, with no growth in the node
count. The growth is reached, and the test asserts it: 2 and 16 compute nodes take the
same calls, Action by Action.

- No call per node: EC2 gives every instance of a fleet the same tags, so the compute
  nodes' names are not tags of their own but tags of the master (segway:names:1, ... of
  i-<id>=nodeNNN pairs), recorded with one CreateTags whatever the node count
  (amazon.aws.ec2_tag, with its own DescribeTags around it). Before, each new node's
  name took one CreateTags: 69 calls for 2 nodes, 83 for 16; now 72 for both.
- The total stops at CEILING_16 (72 reached), not 40. Its calls that change something
  are 17 whatever the node count (the lock taken and released, the key pair, the
  security group and its rule, the launch templates and their tags, the master and its
  attribute, the fleet, the names on the master, two volumes created and attached); the
  other 55 are the look-ups the safety checks rest on (what the cluster owns, name
  clashes, the caller, subnet, image, offerings, the listing, the volumes' and master's
  state) and what the amazon.aws modules read on their own (ec2_instance for the
  master, ec2_security_group for the group, ec2_launch_template and ec2_tag).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ec2_fleet import FleetProxy
from ec2_moto import MotoServer, ec2_client
from ec2_testlib import Run, debian_image, instances_of, names_of, run_playbook, tags

ADMIN = "203.0.113.7/32"
TYPES = ["m7i.xlarge", "m6i.xlarge", "m7a.xlarge"]
# Issue 17 asks for "at most 40" EC2 calls for a launch of 16 compute nodes; measured
# before this test: 95 (81 for 2 nodes), then 83 (69) with one CreateTags per node's
# name. What is reached (MEASURED_16), with a little room: see the module's docstring for
# why not 40.
MEASURED_16 = 72
CEILING_16 = MEASURED_16 + 2


@pytest.fixture(scope="module")
def world(home: Path, ssh_key: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """An account of its own (a moto_server of this module) with an image."""
    tmp = tmp_path_factory.mktemp("calls")
    moto = MotoServer(log=tmp / "moto.log").start()
    ec2 = ec2_client(moto.url)
    try:
        yield {
            "moto": moto,
            "ec2": ec2,
            "home": home,
            "key": ssh_key,
            "image": debian_image(ec2),
        }
    finally:
        moto.stop()


def variables(world: dict, cluster: str, nodes: int) -> dict[str, Any]:
    return {
        "cluster_name": cluster,
        "compute_count": nodes,
        "compute_types": TYPES,
        "spot": True,
        "spot_max_price": "0.2",
        "admin_cidr": ADMIN,
        "public_key_file": f"{world['key']}.pub",
        "ami_id": world["image"],
        "zone": "us-east-1a",
        "configure": False,
    }


def launch(world: dict, cluster: str, nodes: int) -> tuple[Run, Counter[str]]:
    """launch.yml for cluster through a proxy of its own: the run and its calls."""
    with FleetProxy(world["moto"].url, like_ec2=True) as proxy:
        run = run_playbook(
            "launch.yml",
            variables(world, cluster, nodes),
            endpoint=proxy.url,
            home=world["home"],
            timeout=600,
        )
        return run, proxy.counts()


def show(label: str, counts: Counter[str]) -> None:
    print(f"\n{label}: {sum(counts.values())} calls")
    for action, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {action:40} {n}")


def test_launch_calls_do_not_grow_with_the_node_count(world: dict) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        two, sixteen = pool.map(lambda n: launch(world, f"count{n}", n), (2, 16))
    counts = {}
    for nodes, (run, found) in ((2, two), (16, sixteen)):
        assert run.returncode == 0, str(run)
        cluster = f"count{nodes}"
        names = names_of(world["ec2"], cluster)
        assert names == ["master"] + [f"node{n:03d}" for n in range(1, nodes + 1)], names
        # The names are the master's tags; each compute node carries the fleet's tags only.
        master, *computes = instances_of(world["ec2"], cluster)
        assert "segway:names:1" in tags(master), tags(master)
        assert not [k for i in computes for k in tags(i) if k.startswith("segway:names:")]
        assert {tags(i).get("segway:node") for i in computes} == {None}
        assert {tags(i)["Name"] for i in computes} == {f"{cluster}-compute"}
        counts[nodes] = found
        show(f"launch, {nodes} compute nodes", found)

    assert counts[16] == counts[2], (counts[16] - counts[2], counts[2] - counts[16])
    assert counts[16]["CreateTags"] == counts[2]["CreateTags"]
    assert counts[16]["CreateFleet"] == 1, counts[16]
    assert sum(counts[16].values()) <= CEILING_16, counts[16]
