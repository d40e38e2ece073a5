"""inventory/ec2_segway.py: its pure parts on literal EC2 data, its cache and errors on moto.

The groups and host variables of a launched cluster are checked in test_ec2_lifecycle.py;
here the cases moto cannot produce (private-only nodes reached through the master, spot
instances as EC2 reports them, unnamed or duplicated nodes), the command line, the
refusals (a wildcard cluster, a listing that would mix clusters, an untrusted or corrupt
cache), the ProxyCommand's quoting, and the --lookup answers launch and teardown read.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shlex
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


def proxy_command_argv(common_args: str) -> list[str]:
    """The jump command as ssh runs it: Ansible splits ansible_ssh_common_args like a shell,
    ssh expands %% to % in ProxyCommand and hands it to /bin/sh, which splits it again."""
    options = shlex.split(common_args)
    proxy = next(o for o in options if o.startswith("ProxyCommand="))
    return shlex.split(proxy.removeprefix("ProxyCommand=").replace("%%", "%"))


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
        "UserKnownHostsFile=~/.ssh/segway_c1_known_hosts",
        "admin@198.51.100.5",
    ]
    assert "UserKnownHostsFile=~/.ssh/segway_c1_known_hosts" in proxy
    # A compute node with its own public address is reached directly.
    assert hv["node002"]["ansible_host"] == "198.51.100.6"
    assert "ProxyCommand" not in hv["node002"]["ansible_ssh_common_args"]
    assert hv["node001"]["ansible_ssh_private_key_file"] == "/keys/id"
    assert (hv["node001"]["segway_vcpus"], hv["node001"]["segway_memory_mib"]) == (4, 16384)


@pytest.mark.parametrize(
    "key",
    ["/home/me/My Keys/id ed25519", "/k/a'b\"c", "/k/$(touch pwned);x`id`", "/k/100%h"],
)
def test_key_path_is_one_argument_of_the_proxy_command(key: str) -> None:
    """A key path with spaces, quotes, shell syntax or %-tokens stays one argument."""
    settings = inventory.Settings(cluster="c1", ssh_private_key_file=key, ssh_user="ad min")
    nodes = [
        instance("master", "master", PublicIpAddress="198.51.100.5"),
        instance("node001", "compute"),
    ]
    hv = inventory.build_inventory(nodes, SHAPES, {}, settings)["_meta"]["hostvars"]
    argv = proxy_command_argv(hv["node001"]["ansible_ssh_common_args"])
    assert argv[argv.index("-i") + 1] == key
    assert argv[-1] == "ad min@198.51.100.5"
    assert len(argv) == 11


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


def test_all_clusters_are_prefixed_and_kept_out_of_master_and_compute() -> None:
    nodes = [
        instance("master", "master", cluster="c1"),
        instance("master", "master", cluster="my-c2"),
        instance("node001", "compute", cluster="my-c2"),
    ]
    result = inventory.build_inventory(nodes, SHAPES, {}, inventory.Settings(all_clusters=True))
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
    result = inventory.build_inventory(one, SHAPES, {}, inventory.Settings())
    assert result["master"]["hosts"] == ["c1-master"]
    assert result["compute"]["hosts"] == ["c1-node001"]
    two = [*one, instance("master", "master", cluster="my-c2")]
    with pytest.raises(inventory.InventoryError) as err:
        inventory.build_inventory(two, SHAPES, {}, inventory.Settings())
    assert "running instances of 2 clusters were found (c1, my-c2)" in str(err.value)
    assert "SEGWAY_CLUSTER=<name>" in str(err.value)


def test_instances_with_a_malformed_cluster_tag_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = instance("master", "master", cluster="x; touch /tmp/pwned")
    with caplog.at_level(logging.WARNING, logger="ec2_segway"):
        result = inventory.build_inventory([bad], SHAPES, {}, inventory.Settings(all_clusters=True))
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
    hv = inventory.build_inventory(
        [master, legacy], SHAPES, volumes, inventory.Settings(cluster="c1")
    )["_meta"]["hostvars"]
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
    assert inventory.volume_format({}, "vol-1") == "never"
    assert inventory.volume_format({"segway:format": "if_blank"}, "vol-1") == "if_blank"
    assert inventory.volume_partition({"segway:partition": "3"}, "vol-1") == 3
    with caplog.at_level(logging.WARNING, logger="ec2_segway"):
        assert inventory.volume_format({"segway:format": "always"}, "vol-1") == "never"
        assert inventory.volume_partition({"segway:partition": "0"}, "vol-1") is None
    assert "segway:format=always" in caplog.text and "segway:partition=0" in caplog.text


def test_settings_command_line_beats_environment_beats_config() -> None:
    args = inventory.parse_args(["--list", "--region", "eu-west-1"])
    env = {"AWS_REGION": "us-west-2", "SEGWAY_CLUSTER": "envc", "SEGWAY_INVENTORY_CACHE_TTL": "30"}
    config = {"region": "ap-south-1", "cluster": "confc", "ssh_user": "debian"}
    settings = inventory.resolve_settings(args, env, config)
    assert (settings.region, settings.cluster, settings.cache_ttl) == ("eu-west-1", "envc", 30)
    assert settings.ssh_user == "debian"
    with pytest.raises(inventory.InventoryError, match="cache TTL must be whole seconds"):
        inventory.resolve_settings(args, {"SEGWAY_INVENTORY_CACHE_TTL": "soon"}, {})


@pytest.mark.parametrize(
    ("args", "env", "config", "source"),
    [
        (["--cluster", "al*"], {}, {}, "--cluster"),
        ([], {"SEGWAY_CLUSTER": "?"}, {}, "SEGWAY_CLUSTER"),
        ([], {}, {"cluster": "segway-[ab]"}, "the config file (key cluster)"),
        (["--cluster", "My_Cluster"], {}, {}, "--cluster"),
        (["--cluster", "a" * 33], {}, {}, "--cluster"),
    ],
)
def test_cluster_must_be_a_cluster_name_or_all(
    args: list[str], env: dict[str, str], config: dict[str, str], source: str
) -> None:
    parsed = inventory.parse_args(["--list", *args])
    with pytest.raises(inventory.InventoryError) as err:
        inventory.resolve_settings(parsed, env, config)
    message = str(err.value)
    assert f"from {source} is not allowed" in message
    assert "1-32 lowercase letters, digits and hyphens, starting with a letter) or 'all'" in message
    if any(c in message for c in "*?["):
        assert "wildcards such as * and ? are not allowed" in message
    every = inventory.resolve_settings(inventory.parse_args(["--list", "--cluster", "all"]), {}, {})
    assert (every.cluster, every.all_clusters) == (None, True)


def test_wildcard_cluster_stops_the_script_before_asking_ec2(home: Path) -> None:
    result = run_inventory("--list", "--cluster", "al*", endpoint="http://127.0.0.1:9", home=home)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(
        "ec2_segway: ERROR: cluster 'al*' from --cluster is not allowed "
        "(wildcards such as * and ? are not allowed)"
    )


def launch_node(ec2: Any, cluster: str, node: str, role: str, **extra_tags: str) -> str:
    """One running instance tagged as launch.yml tags a node."""
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    tags = {"segway:cluster": cluster, "segway:role": role, "segway:node": node, **extra_tags}
    return ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"][0]["InstanceId"]


def test_a_listing_of_two_clusters_needs_a_cluster_or_all(moto, home: Path) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    launch_node(ec2, "one", "master", "master")
    launch_node(ec2, "two", "master", "master")
    mixed = run_inventory("--list", endpoint=moto.url, home=home)
    assert mixed.returncode == 1 and mixed.stdout == ""
    assert "running instances of 2 clusters were found (one, two)" in mixed.stderr
    assert "Choose one with SEGWAY_CLUSTER=<name>" in mixed.stderr
    chosen = run_inventory("--list", endpoint=moto.url, home=home, env={"SEGWAY_CLUSTER": "two"})
    assert json.loads(chosen.stdout)["master"]["hosts"] == ["master"]
    every = run_inventory("--list", "--cluster", "all", endpoint=moto.url, home=home)
    listing = json.loads(every.stdout)
    assert listing["master"]["hosts"] == []
    assert listing["cluster_one"]["hosts"] == ["one-master"]
    assert listing["cluster_two"]["hosts"] == ["two-master"]
    owned = run_inventory("--lookup", "--owned", "--cluster", "all", endpoint=moto.url, home=home)
    assert owned.returncode == 1
    assert "--owned needs one cluster: --cluster <name> (not all)" in owned.stderr


def test_lookup_reports_owners_the_lock_volume_name_clashes_and_group_users(
    moto, home: Path
) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    owner = "arn:aws:iam::123456789012:user/alice"
    mine = [{"Key": "segway:cluster", "Value": "c9"}, {"Key": "segway:owner", "Value": owner}]
    group = ec2.create_security_group(
        GroupName="segway-c9",
        Description="c9",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": mine}],
    )["GroupId"]
    ec2.create_launch_template(
        LaunchTemplateName="segway-c9-launch-lock",
        LaunchTemplateData={"InstanceType": "m7i.large"},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": mine}],
    )
    master = launch_node(ec2, "c9", "master", "master", **{"segway:owner": owner})
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    stranger = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        SecurityGroupIds=[group],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}],
    )["Instances"][0]["InstanceId"]
    ec2.modify_instance_attribute(InstanceId=master, Groups=[group])
    clash = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=1,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "c9-home"}]}
        ],
    )["VolumeId"]
    ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=1,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [
                    *mine,
                    {"Key": "Name", "Value": "c9-data"},
                    {"Key": "segway:volume", "Value": "data"},
                ],
            }
        ],
    )
    result = run_inventory(
        "--lookup",
        "--teardown",
        "--cluster",
        "c9",
        "--volume-names",
        "c9-home,c9-data",
        endpoint=moto.url,
        home=home,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    owned = found["owned"]
    assert owned["lock"]["name"] == "segway-c9-launch-lock" and owned["lock"]["owner"] == owner
    assert owned["owners"] == [owner]
    assert {(r["kind"], r["owner"]) for r in owned["resources"]} == {
        ("instance", owner),
        ("volume", owner),
        ("launch template", owner),
        ("security group", owner),
    }
    # The cluster's own master is not a user of its group; the stranger's instance is.
    users = owned["security_groups"][0]["users"]
    assert [(u["kind"], u["id"], u["name"]) for u in users] == [("instance", stranger, "web")]
    assert [(c["id"], c["name"]) for c in found["volume_name_clashes"]] == [(clash, "c9-home")]
    plan = found["teardown"]
    assert plan["security_groups"] == []
    assert [g["id"] for g in plan["kept_security_groups"]] == [group]
    assert f"instance {stranger} (Name web, running)" in plan["group_notes"][0]
    assert "delete launch template segway-c9-launch-lock (the launch lock)" in plan["plan"]


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
    plan = inventory.teardown_plan(owned, delete_volumes=True)
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
    assert inventory.teardown_plan(gone, delete_volumes=False)["empty"]


def test_cache_is_written_private_and_an_untrusted_or_corrupt_one_is_ignored(
    moto, home: Path, tmp_path: Path
) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    launch_node(ec2, "cached", "master", "master")
    cache_dir = tmp_path / "cache"
    env = {"SEGWAY_INVENTORY_CACHE_TTL": "300", "SEGWAY_INVENTORY_CACHE_DIR": str(cache_dir)}

    def listed() -> tuple[list[str], str]:
        result = run_inventory(
            "--list", "--cluster", "cached", endpoint=moto.url, home=home, env=env
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return json.loads(result.stdout)["master"]["hosts"], result.stderr

    assert listed() == (["master"], "")
    (path,) = cache_dir.glob("ec2_segway-*.json")
    assert oct(cache_dir.stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    planted = json.loads(path.read_text())
    planted["inventory"]["master"]["hosts"] = ["planted"]
    cases = {
        "its mode is 0644, not 0600": (json.dumps(planted), 0o644),
        "ignoring corrupt cache": ("{not json", 0o600),
        "ignoring corrupt cache ": ("[1, 2]", 0o600),
        "ignoring corrupt cache  ": (json.dumps({"created": 1e12}), 0o600),
    }
    for warning, (text, mode) in cases.items():
        path.write_text(text)
        path.chmod(mode)
        hosts, stderr = listed()
        assert hosts == ["master"], warning
        assert warning.strip() in stderr, stderr
        # Refreshed: the cache holds EC2's answer again, private.
        assert json.loads(path.read_text())["inventory"]["master"]["hosts"] == ["master"]
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    if os.geteuid() == 0:  # another user's cache file (only root can make one here)
        path.write_text(json.dumps(planted))
        path.chmod(0o600)
        os.chown(path, 65534, 65534)
        hosts, stderr = listed()
        assert hosts == ["master"] and "belongs to uid 65534, not to you" in stderr


def test_cache_of_another_user_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ec2_segway-x.json"
    path.write_text(json.dumps({"created": 100.0, "inventory": {"_meta": {"hostvars": {}}}}))
    path.chmod(0o600)
    assert inventory.read_cache(path, 300, 200.0) == {"_meta": {"hostvars": {}}}
    monkeypatch.setattr(inventory.os, "geteuid", lambda: os.getuid() + 1)
    with caplog.at_level(logging.WARNING, logger="ec2_segway"):
        assert inventory.read_cache(path, 300, 200.0) is None
    assert "not to you" in caplog.text
    link = tmp_path / "link.json"
    link.symlink_to(path)
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="ec2_segway"):
        assert inventory.read_cache(link, 300, 200.0) is None  # a link is not followed


def test_errors_go_to_stderr_with_a_non_zero_exit(home: Path) -> None:
    result = run_inventory("--list", endpoint="http://127.0.0.1:9", home=home)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("ec2_segway: ERROR: cannot read EC2 in us-east-1")
    missing = run_inventory("--host", "nowhere", endpoint="http://127.0.0.1:9", home=home)
    assert missing.returncode == 1 and missing.stdout == ""
