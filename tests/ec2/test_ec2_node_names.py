"""Compute nodes' names recorded on the master (issue 17), on moto_server, through
launch.yml, the inventory script and remove_nodes' terminate step.

A cluster of an older version named each compute node with tags of its own
(segway:node, Name <cluster>-nodeNNN): it must keep working, and its next launch that
names a node moves every name onto the master. A compute instance an earlier run
launched but did not name (the run died before the master's tags were written) gets the
lowest free number; the master's name tags are rewritten with the live nodes only, and a
key no longer needed is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ec2_fleet import FleetProxy
from ec2_moto import MotoServer, ec2_client
from ec2_testlib import (
    Run,
    debian_image,
    instances_of,
    names_of,
    nodes_of,
    run_inventory,
    run_playbook,
    tags,
)

CLUSTER = "names"
GONE = "i-0123456789abcdef0"


@pytest.fixture(scope="module")
def world(home: Path, ssh_key: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """An account of its own (a moto_server of this module) with an image."""
    moto = MotoServer(log=tmp_path_factory.mktemp("names") / "moto.log").start()
    ec2 = ec2_client(moto.url)
    try:
        yield {"moto": moto, "ec2": ec2, "home": home, "key": ssh_key, "image": debian_image(ec2)}
    finally:
        moto.stop()


def launch(world: dict, nodes: int) -> Run:
    extra = {
        "cluster_name": CLUSTER,
        "compute_count": nodes,
        "admin_cidr": "203.0.113.7/32",
        "public_key_file": f"{world['key']}.pub",
        "ami_id": world["image"],
        "zone": "us-east-1a",
        "configure": False,
    }
    with FleetProxy(world["moto"].url, like_ec2=True) as proxy:
        return run_playbook("launch.yml", extra, endpoint=proxy.url, home=world["home"])


def master_names(world: dict) -> dict[str, str]:
    """The master's segway:names:N tags."""
    master = nodes_of(world["ec2"], CLUSTER)["master"]
    return {k: v for k, v in tags(master).items() if k.startswith("segway:names:")}


def listed(world: dict) -> dict[str, Any]:
    result = run_inventory(
        "--list", "--cluster", CLUSTER, endpoint=world["moto"].url, home=world["home"]
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_an_older_clusters_names_are_read_then_moved_onto_the_master(world: dict) -> None:
    ec2 = world["ec2"]
    first = launch(world, 2)
    assert first.returncode == 0, str(first)
    nodes = nodes_of(ec2, CLUSTER)
    assert list(nodes) == ["master", "node001", "node002"]
    # Make it a cluster as an older version left it: names on the nodes, none on the master.
    master = nodes["master"]["InstanceId"]
    ec2.delete_tags(Resources=[master], Tags=[{"Key": k} for k in master_names(world)])
    for name in ("node001", "node002"):
        ec2.create_tags(
            Resources=[nodes[name]["InstanceId"]],
            Tags=[{"Key": "segway:node", "Value": name}, {"Key": "Name", "Value": f"names-{name}"}],
        )
    # ... and a name tag on the master whose instance is gone.
    ec2.create_tags(
        Resources=[master], Tags=[{"Key": "segway:names:2", "Value": f"{GONE}=node005"}]
    )
    inventory = listed(world)
    assert inventory["compute"]["hosts"] == ["node001", "node002"]
    assert (
        inventory["_meta"]["hostvars"]["node002"]["segway_instance_id"]
        == (nodes["node002"]["InstanceId"])
    )

    # Its next launch that names a node records every live name on the master, drops the
    # gone pair (and with it segway:names:2), and leaves the old nodes' own tags alone.
    grown = launch(world, 3)
    assert grown.returncode == 0, str(grown)
    after = nodes_of(ec2, CLUSTER)
    assert list(after) == ["master", "node001", "node002", "node003"]
    ids = {name: inst["InstanceId"] for name, inst in after.items()}
    assert master_names(world) == {
        "segway:names:1": f"{ids['node001']}=node001 {ids['node002']}=node002 "
        f"{ids['node003']}=node003"
    }
    assert tags(after["node001"])["segway:node"] == "node001"
    assert "segway:node" not in tags(after["node003"])
    assert tags(after["node003"])["Name"] == f"{CLUSTER}-compute"
    assert listed(world)["compute"]["hosts"] == ["node001", "node002", "node003"]
    again = launch(world, 3)
    assert again.returncode == 0 and again.changed == 0, str(again)


def test_an_unnamed_node_gets_the_lowest_free_number(world: dict) -> None:
    ec2 = world["ec2"]
    before = nodes_of(ec2, CLUSTER)
    # What a run that died between the fleet and the master's tags leaves: a compute
    # instance of the cluster without a name anywhere.
    template = before["node003"]
    unnamed = ec2.run_instances(
        ImageId=world["image"],
        MinCount=1,
        MaxCount=1,
        SubnetId=template["SubnetId"],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "segway:cluster", "Value": CLUSTER},
                    {"Key": "segway:role", "Value": "compute"},
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]
    assert "node004" not in listed(world)["_meta"]["hostvars"]
    named = launch(world, 4)
    assert named.returncode == 0, str(named)
    assert nodes_of(ec2, CLUSTER)["node004"]["InstanceId"] == unnamed
    assert names_of(ec2, CLUSTER) == ["master", "node001", "node002", "node003", "node004"]


def test_removed_nodes_are_terminated_by_the_name_the_master_records(world: dict) -> None:
    ec2 = world["ec2"]
    ids = {name: inst["InstanceId"] for name, inst in nodes_of(ec2, CLUSTER).items()}
    pairs = [
        f"node004={ids['node004']}",  # named by the master
        f"node001={ids['node001']}",  # named by its own tag (an older version's node)
        f"node002={ids['node003']}",  # an id of another node
        f"master={ids['master']}",  # never: not a compute node
    ]
    task = {
        "ansible.builtin.include_role": {
            "name": "segway.cluster.ec2_cluster",
            "tasks_from": "terminate_nodes",
        },
        "vars": {"ec2_cluster_name": CLUSTER, "ec2_cluster_terminate_nodes": pairs},
    }
    playbook = world["home"] / "terminate.yml"
    playbook.write_text(
        json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    )
    run = run_playbook(str(playbook), {}, endpoint=world["moto"].url, home=world["home"])
    assert run.returncode == 0, str(run)
    assert "Not terminated" in run.flat and "master, node002." in run.flat, str(run)
    assert names_of(ec2, CLUSTER) == ["master", "node002", "node003"]
    # The next launch names the new nodes with the numbers freed, and drops the gone ones.
    grown = launch(world, 4)
    assert grown.returncode == 0, str(grown)
    assert names_of(ec2, CLUSTER) == ["master", "node001", "node002", "node003", "node004"]
    recorded = " ".join(master_names(world).values())
    assert ids["node004"] not in recorded and ids["node001"] not in recorded, recorded
    down = run_playbook(
        "teardown.yml",
        {"cluster_name": CLUSTER, "confirm": True, "delete_volumes": True},
        endpoint=world["moto"].url,
        home=world["home"],
    )
    assert down.returncode == 0, str(down)
    assert instances_of(ec2, CLUSTER) == []
