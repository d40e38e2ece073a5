"""inventory/ec2_segway.py: its pure parts on literal EC2 data, its cache and errors on moto.

The groups and host variables of a launched cluster are checked in test_ec2_lifecycle.py;
here the cases moto cannot produce (private-only nodes reached through the master, spot
instances as EC2 reports them, unnamed or duplicated nodes) and the command line.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from ec2_moto import ec2_client
from ec2_testlib import INVENTORY_SCRIPT, run_inventory

spec = importlib.util.spec_from_file_location("ec2_segway", INVENTORY_SCRIPT)
assert spec and spec.loader
inventory = importlib.util.module_from_spec(spec)
sys.modules["ec2_segway"] = inventory  # dataclasses look their module up there
spec.loader.exec_module(inventory)


def instance(node: str, role: str, **fields: Any) -> dict[str, Any]:
    base = {
        "InstanceId": f"i-{node}",
        "InstanceType": "m7i.xlarge",
        "PrivateIpAddress": f"10.0.0.{len(node)}",
        "Placement": {"AvailabilityZone": "us-east-1b"},
        "LaunchTime": "2025-01-01T00:00:00Z",
        "ImageId": "ami-12345678",
        "Tags": [
            {"Key": "segway:cluster", "Value": fields.pop("cluster", "c1")},
            {"Key": "segway:role", "Value": role},
            {"Key": "segway:node", "Value": node},
        ],
    }
    base.update(fields)
    return base


SHAPES = {"m7i.xlarge": {"vcpus": 4, "memory_mib": 16384}}


def test_private_compute_nodes_are_reached_through_the_master() -> None:
    settings = inventory.Settings(cluster="c1", ssh_private_key_file="/keys/id")
    nodes = [
        instance("master", "master", PublicIpAddress="198.51.100.5"),
        instance("node001", "compute"),
        instance("node002", "compute", PublicIpAddress="198.51.100.6"),
    ]
    result = inventory.build_inventory(nodes, SHAPES, {}, settings)
    hv = result["_meta"]["hostvars"]
    assert hv["master"]["ansible_host"] == "198.51.100.5"
    assert hv["node001"]["ansible_host"] == nodes[1]["PrivateIpAddress"]
    proxy = hv["node001"]["ansible_ssh_common_args"]
    assert 'ProxyCommand="ssh -W %h:%p -q -i /keys/id' in proxy
    assert "admin@198.51.100.5" in proxy
    assert "UserKnownHostsFile=~/.ssh/segway_c1_known_hosts" in proxy
    # A compute node with its own public address is reached directly.
    assert hv["node002"]["ansible_host"] == "198.51.100.6"
    assert "ProxyCommand" not in hv["node002"]["ansible_ssh_common_args"]
    assert hv["node001"]["ansible_ssh_private_key_file"] == "/keys/id"
    assert (hv["node001"]["segway_vcpus"], hv["node001"]["segway_memory_mib"]) == (4, 16384)


def test_spot_lifecycle_comes_from_ec2_and_the_market_from_the_tag() -> None:
    settings = inventory.Settings(cluster="c1")
    node = instance("node001", "compute", InstanceLifecycle="spot")
    node["Tags"].append({"Key": "segway:market", "Value": "spot"})
    hv = inventory.build_inventory([node], SHAPES, {}, settings)["_meta"]["hostvars"]
    assert hv["node001"]["segway_lifecycle"] == "spot"
    assert hv["node001"]["segway_market"] == "spot"


def test_unnamed_and_duplicate_nodes_are_reported_not_guessed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = inventory.Settings(cluster="c1")
    unnamed = instance("x", "compute")
    unnamed["Tags"] = [t for t in unnamed["Tags"] if t["Key"] != "segway:node"]
    first = instance("node001", "compute", LaunchTime="2025-01-01T00:00:00Z")
    twin = instance("node001", "compute", InstanceId="i-twin", LaunchTime="2025-02-01T00:00:00Z")
    with caplog.at_level(logging.WARNING, logger="ec2_segway"):
        result = inventory.build_inventory([unnamed, twin, first], SHAPES, {}, settings)
    assert result["compute"]["hosts"] == ["node001"]
    assert result["_meta"]["hostvars"]["node001"]["segway_instance_id"] == "i-node001"
    assert "has no node name yet" in caplog.text
    assert "both named node001" in caplog.text


def test_all_clusters_are_prefixed_and_grouped_per_cluster() -> None:
    nodes = [
        instance("master", "master", cluster="c1"),
        instance("master", "master", cluster="my-c2"),
        instance("node001", "compute", cluster="my-c2"),
    ]
    result = inventory.build_inventory(nodes, SHAPES, {}, inventory.Settings())
    assert result["master"]["hosts"] == ["c1-master", "my-c2-master"]
    assert result["cluster_my_c2"]["hosts"] == ["my-c2-master", "my-c2-node001"]
    assert result["all"]["children"] == [
        "cluster_c1",
        "cluster_my_c2",
        "compute",
        "master",
        "ungrouped",
    ]


def test_settings_command_line_beats_environment_beats_config() -> None:
    args = inventory.parse_args(["--list", "--region", "eu-west-1"])
    env = {"AWS_REGION": "us-west-2", "SEGWAY_CLUSTER": "envc", "SEGWAY_INVENTORY_CACHE_TTL": "30"}
    config = {"region": "ap-south-1", "cluster": "confc", "ssh_user": "debian"}
    settings = inventory.resolve_settings(args, env, config)
    assert (settings.region, settings.cluster, settings.cache_ttl) == ("eu-west-1", "envc", 30)
    assert settings.ssh_user == "debian"
    with pytest.raises(inventory.InventoryError, match="cache TTL must be whole seconds"):
        inventory.resolve_settings(args, {"SEGWAY_INVENTORY_CACHE_TTL": "soon"}, {})


def test_cache_answers_within_its_ttl_and_refresh_asks_ec2(
    moto, home: Path, tmp_path: Path
) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "segway:cluster", "Value": "cached"},
                    {"Key": "segway:role", "Value": "master"},
                    {"Key": "segway:node", "Value": "master"},
                ],
            }
        ],
    )
    env = {"SEGWAY_INVENTORY_CACHE_TTL": "300", "SEGWAY_INVENTORY_CACHE_DIR": str(tmp_path)}

    def listed(*extra: str) -> list[str]:
        result = run_inventory(
            "--list", "--cluster", "cached", *extra, endpoint=moto.url, home=home, env=env
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["master"]["hosts"]

    assert listed() == ["master"]
    assert len(list(tmp_path.glob("ec2_segway-*.json"))) == 1
    ids = [
        i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
    ]
    ec2.terminate_instances(InstanceIds=ids)
    assert listed() == ["master"]  # still cached
    assert listed("--refresh-cache") == []
    assert listed() == []


def test_errors_go_to_stderr_with_a_non_zero_exit(home: Path) -> None:
    result = run_inventory("--list", endpoint="http://127.0.0.1:9", home=home)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("ec2_segway: ERROR: cannot read EC2 in us-east-1")
    missing = run_inventory("--host", "nowhere", endpoint="http://127.0.0.1:9", home=home)
    assert missing.returncode == 1 and missing.stdout == ""
