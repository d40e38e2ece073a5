"""Unit tests of plugins/module_utils/ec2_cluster.py: the hosts, groups and host variables
of a listing (inventory/ec2_segway.py's --list, ec2_cluster_info's inventory) on literal EC2
data, and what teardown does with what a cluster owns.

Here the cases moto cannot produce: private-only nodes reached through the master, spot
instances as EC2 reports them, unnamed or duplicated nodes, a listing that would mix
clusters, and the ProxyCommand's quoting.
"""

from __future__ import annotations

import logging
import os
import shlex
from typing import Any

import pytest
from ansible_collections.segway.cluster.plugins.module_utils.ec2_cluster import (
    Ec2ClusterError,
    HostAccess,
    build_inventory,
    teardown_plan,
    volume_format,
    volume_partition,
)


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
# ssh would expand ~ with the passwd home, not HOME: the inventory hands it expanded.
KNOWN = os.path.expanduser("~/.ssh/segway_c1_known_hosts")


def proxy_command_argv(common_args: str) -> list[str]:
    """The jump command as ssh runs it: Ansible splits ansible_ssh_common_args like a shell,
    ssh expands %% to % in ProxyCommand and hands it to /bin/sh, which splits it again."""
    options = shlex.split(common_args)
    proxy = next(o for o in options if o.startswith("ProxyCommand="))
    return shlex.split(proxy.removeprefix("ProxyCommand=").replace("%%", "%"))


def test_private_compute_nodes_are_reached_through_the_master() -> None:
    settings = HostAccess(cluster="c1", ssh_private_key_file="/keys/id")
    nodes = [
        instance("master", "master", PublicIpAddress="198.51.100.5"),
        instance("node001", "compute"),
        instance("node002", "compute", PublicIpAddress="198.51.100.6"),
    ]
    result = build_inventory(nodes, SHAPES, {}, settings)
    hv = result["_meta"]["hostvars"]
    assert hv["master"]["ansible_host"] == "198.51.100.5"
    assert hv["node001"]["ansible_host"] == nodes[1]["PrivateIpAddress"]
    proxy = hv["node001"]["ansible_ssh_common_args"]
    assert proxy_command_argv(proxy) == [
        "ssh",
        "-W",
        "%h:%p",
        "-q",
        "-i",
        "/keys/id",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={KNOWN}",
        "admin@198.51.100.5",
    ]
    assert f"UserKnownHostsFile={KNOWN}" in proxy
    # A compute node with its own public address is reached directly.
    assert hv["node002"]["ansible_host"] == "198.51.100.6"
    assert "ProxyCommand" not in hv["node002"]["ansible_ssh_common_args"]
    assert hv["node001"]["ansible_ssh_private_key_file"] == "/keys/id"
    assert (hv["node001"]["segway_vcpus"], hv["node001"]["segway_memory_mib"]) == (4, 16384)


def test_ssh_address_private_reaches_every_node_at_its_private_address() -> None:
    """A controller inside the VPC: no public address, no jump through the master."""
    access = HostAccess(cluster="c1", ssh_private_key_file="/keys/id", ssh_address="private")
    nodes = [
        instance("master", "master", PublicIpAddress="198.51.100.5", PrivateIpAddress="10.0.0.1"),
        instance("node001", "compute", PrivateIpAddress="10.0.0.2"),
        instance("node002", "compute", PublicIpAddress="198.51.100.6", PrivateIpAddress="10.0.0.3"),
    ]
    hv = build_inventory(nodes, SHAPES, {}, access)["_meta"]["hostvars"]
    assert {name: v["ansible_host"] for name, v in hv.items()} == {
        "master": "10.0.0.1",
        "node001": "10.0.0.2",
        "node002": "10.0.0.3",
    }
    for v in hv.values():
        assert "ProxyCommand" not in v["ansible_ssh_common_args"]
        assert f"UserKnownHostsFile={KNOWN}" in v["ansible_ssh_common_args"]
        assert v["ansible_ssh_private_key_file"] == "/keys/id"
    # The public addresses are still described for the user.
    assert hv["master"]["segway_public_ip"] == "198.51.100.5"
    # The default reaches the same master at its public address.
    default = build_inventory(nodes, SHAPES, {}, HostAccess(cluster="c1"))["_meta"]["hostvars"]
    assert default["master"]["ansible_host"] == "198.51.100.5"


@pytest.mark.parametrize(
    "key",
    ["/home/me/My Keys/id ed25519", "/k/a'b\"c", "/k/$(touch pwned);x`id`", "/k/100%h"],
)
def test_key_path_is_one_argument_of_the_proxy_command(key: str) -> None:
    """A key path with spaces, quotes, shell syntax or %-tokens stays one argument."""
    settings = HostAccess(cluster="c1", ssh_private_key_file=key, ssh_user="ad min")
    nodes = [
        instance("master", "master", PublicIpAddress="198.51.100.5"),
        instance("node001", "compute"),
    ]
    hv = build_inventory(nodes, SHAPES, {}, settings)["_meta"]["hostvars"]
    argv = proxy_command_argv(hv["node001"]["ansible_ssh_common_args"])
    assert argv[argv.index("-i") + 1] == key
    assert argv[-1] == "ad min@198.51.100.5"
    assert len(argv) == 11


def test_spot_lifecycle_comes_from_ec2_and_the_market_from_the_tag() -> None:
    settings = HostAccess(cluster="c1")
    node = instance("node001", "compute", InstanceLifecycle="spot")
    node["Tags"].append({"Key": "segway:market", "Value": "spot"})
    hv = build_inventory([node], SHAPES, {}, settings)["_meta"]["hostvars"]
    assert hv["node001"]["segway_lifecycle"] == "spot"
    assert hv["node001"]["segway_market"] == "spot"


def test_unnamed_and_duplicate_nodes_are_reported_not_guessed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = HostAccess(cluster="c1")
    unnamed = instance("x", "compute")
    unnamed["Tags"] = [t for t in unnamed["Tags"] if t["Key"] != "segway:node"]
    first = instance("node001", "compute", LaunchTime="2025-01-01T00:00:00Z")
    twin = instance("node001", "compute", InstanceId="i-twin", LaunchTime="2025-02-01T00:00:00Z")
    with caplog.at_level(logging.WARNING, logger="segway.ec2_cluster"):
        result = build_inventory([unnamed, twin, first], SHAPES, {}, settings)
    assert result["compute"]["hosts"] == ["node001"]
    assert result["_meta"]["hostvars"]["node001"]["segway_instance_id"] == "i-node001"
    assert "has no node name yet" in caplog.text
    assert "both named node001" in caplog.text


def test_all_clusters_are_prefixed_and_kept_out_of_master_and_compute() -> None:
    nodes = [
        instance("master", "master", cluster="c1"),
        instance("master", "master", cluster="my-c2"),
        instance("node001", "compute", cluster="my-c2"),
    ]
    result = build_inventory(nodes, SHAPES, {}, HostAccess(all_clusters=True))
    # configure.yml runs on master and compute: a listing of every cluster leaves them empty.
    assert result["master"]["hosts"] == [] and result["compute"]["hosts"] == []
    assert result["cluster_c1"]["hosts"] == ["c1-master"]
    assert result["cluster_my_c2"]["hosts"] == ["my-c2-master", "my-c2-node001"]
    assert result["all"]["children"] == [
        "cluster_c1",
        "cluster_my_c2",
        "compute",
        "master",
        "ungrouped",
    ]


def test_no_cluster_chosen_lists_one_cluster_and_refuses_to_mix_two() -> None:
    one = [instance("master", "master", cluster="c1"), instance("node001", "compute", cluster="c1")]
    result = build_inventory(one, SHAPES, {}, HostAccess())
    assert result["master"]["hosts"] == ["c1-master"]
    assert result["compute"]["hosts"] == ["c1-node001"]
    two = [*one, instance("master", "master", cluster="my-c2")]
    with pytest.raises(Ec2ClusterError) as err:
        build_inventory(two, SHAPES, {}, HostAccess())
    assert "running instances of 2 clusters were found (c1, my-c2)" in str(err.value)
    assert "SEGWAY_CLUSTER=<name>" in str(err.value)


def test_instances_with_a_malformed_cluster_tag_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = instance("master", "master", cluster="x; touch /tmp/pwned")
    with caplog.at_level(logging.WARNING, logger="segway.ec2_cluster"):
        result = build_inventory([bad], SHAPES, {}, HostAccess(all_clusters=True))
    assert result["_meta"]["hostvars"] == {}
    assert "is not a cluster name" in caplog.text


def test_owner_and_mount_options_reach_the_host_variables() -> None:
    master = instance("master", "master", PublicIpAddress="198.51.100.5")
    master["Tags"].append({"Key": "segway:owner", "Value": "arn:aws:iam::123456789012:user/a"})
    legacy = instance("node001", "compute")
    volumes = {
        "i-master": [
            {
                "volume_id": "vol-1",
                "device": "/dev/sdf",
                "mount": "/home",
                "shared": True,
                "name": "home",
                "format": "if_blank",
                "fstype": "",
                "partition": None,
            },
            {
                "volume_id": "vol-2",
                "device": "/dev/sdg",
                "mount": "/genomes",
                "shared": True,
                "name": "genomes",
                "format": "never",
                "fstype": "xfs",
                "partition": 2,
            },
            {
                "volume_id": "vol-3",
                "device": "/dev/sdh",
                "mount": "/data",
                "shared": False,
                "name": "",
            },
        ]
    }
    hv = build_inventory([master, legacy], SHAPES, volumes, HostAccess(cluster="c1"))["_meta"][
        "hostvars"
    ]
    assert hv["master"]["segway_owner"] == "arn:aws:iam::123456789012:user/a"
    assert hv["node001"]["segway_owner"] == ""
    home, genomes, data = hv["master"]["ebs_mount_volumes"]
    assert home == {
        "name": "home",
        "volume_id": "vol-1",
        "device": "/dev/sdf",
        "mount_point": "/home",
        "share": True,
        "format": "if_blank",
        "copy_existing": True,
    }
    assert (genomes["format"], genomes["fstype"], genomes["partition"]) == ("never", "xfs", 2)
    assert "copy_existing" not in genomes
    # No segway:format tag: never formatted.
    assert data["format"] == "never" and "fstype" not in data and "partition" not in data


def test_volume_tags_become_format_and_partition(caplog: pytest.LogCaptureFixture) -> None:
    assert volume_format({}, "vol-1") == "never"
    assert volume_format({"segway:format": "if_blank"}, "vol-1") == "if_blank"
    assert volume_partition({"segway:partition": "3"}, "vol-1") == 3
    with caplog.at_level(logging.WARNING, logger="segway.ec2_cluster"):
        assert volume_format({"segway:format": "always"}, "vol-1") == "never"
        assert volume_partition({"segway:partition": "0"}, "vol-1") is None
    assert "segway:format=always" in caplog.text and "segway:partition=0" in caplog.text


def owned_volume(vid: str, name: str, mount: str, *attached: str, cluster: str = "c1") -> dict:
    tags = {"segway:volume": name, "segway:mount": mount, "Name": f"{cluster}-{name}"}
    if cluster:
        tags["segway:cluster"] = cluster
    else:
        tags = {"Name": name, "segway:attached-to": "c1", "segway:mount": mount}
    return {
        "id": vid,
        "tags": tags,
        "attachments": [{"instance_id": i, "device": "/dev/sdf"} for i in attached],
    }


def test_teardown_plan_keeps_what_is_not_only_the_clusters() -> None:
    master = {
        "id": "i-m",
        "node": "master",
        "type": "m7i.large",
        "state": "running",
        "block_devices": [
            {"device": "/dev/sda1", "volume_id": "vol-root", "delete_on_termination": True},
            {"device": "/dev/sdf", "volume_id": "vol-home", "delete_on_termination": False},
            {"device": "/dev/sdg", "volume_id": "vol-mine", "delete_on_termination": False},
        ],
    }
    holder = {"kind": "instance", "id": "i-x", "name": "web", "cluster": "", "state": "running"}
    owned = {
        "instances": [master],
        "spot_request_ids": [],
        "cluster_volumes": [
            owned_volume("vol-home", "home", "/home", "i-m"),
            owned_volume("vol-lent", "scratch", "/scratch", "i-other"),
        ],
        "data_volumes": [owned_volume("vol-mine", "my-data", "/data", "i-m", cluster="")],
        "launch_templates": [{"name": "segway-c1-launch-lock", "lock": True}],
        "security_groups": [{"id": "sg-1", "name": "segway-c1", "users": [holder]}],
        "key_pairs": ["segway-c1"],
    }
    plan = teardown_plan(owned, delete_volumes=True)
    assert plan["delete_volume_ids"] == ["vol-home"]
    assert plan["kept_volume_ids"] == ["vol-lent", "vol-mine"]
    assert plan["security_groups"] == [] and plan["kept_security_groups"][0]["id"] == "sg-1"
    lines = plan["plan"]
    assert (
        "DELETE volume vol-home (home, /home: the files of the cluster user) and its data "
        "(delete_volumes=true)" in lines
    )
    assert (
        "keep volume vol-lent (scratch, /scratch) (attached to i-other, not the cluster's)" in lines
    )
    assert "keep volume vol-mine (my-data, /data: yours, attached by id; never deleted)" in lines
    assert "delete launch template segway-c1-launch-lock (the launch lock)" in lines
    assert plan["group_notes"] == [
        "security group sg-1 (segway-c1) is kept: EC2 refuses to delete it while instance i-x "
        "(Name web, running) uses it. To finish, remove that instance from the group (or "
        "terminate it), then run teardown again."
    ]
    assert not plan["empty"]
    gone = {**owned, "instances": [], "launch_templates": [], "key_pairs": []}
    assert teardown_plan(gone, delete_volumes=False)["empty"]


def test_known_hosts_path_is_expanded_with_home_and_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    """ssh expands ~ with the account's passwd home; teardown deletes the file under HOME.
    The inventory gives ssh the path under HOME, quoted, even with a space in it."""
    monkeypatch.setenv("HOME", "/tmp/a home")
    access = HostAccess(cluster="c1", ssh_private_key_file="/keys/id")
    nodes = [
        instance("master", "master", PublicIpAddress="198.51.100.5"),
        instance("node001", "compute"),
    ]
    hv = build_inventory(nodes, SHAPES, {}, access)["_meta"]["hostvars"]
    known = "UserKnownHostsFile=/tmp/a home/.ssh/segway_c1_known_hosts"
    assert known in shlex.split(hv["master"]["ansible_ssh_common_args"])
    assert known in proxy_command_argv(hv["node001"]["ansible_ssh_common_args"])
