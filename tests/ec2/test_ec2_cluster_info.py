"""segway.cluster.ec2_cluster_info against moto_server: what a cluster owns (owners, the
launch lock, what else uses its security group), the planned volumes' problems, the
teardown plan, and its hosts, which must be the dynamic inventory's own listing.

The module runs as Ansible runs it (its file, given its arguments as JSON), without a
playbook around it; launch and teardown play it in test_ec2_lifecycle.py and the
safety tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from ec2_moto import ec2_client
from ec2_testlib import launch_node, run_inventory, run_module


def info(moto, home: Path, **args) -> dict:
    return run_module("ec2_cluster_info", args, endpoint=moto.url, home=home)


def test_owners_the_lock_volume_name_clashes_and_group_users(moto, home: Path) -> None:
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
    data = ec2.create_volume(
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
    )["VolumeId"]
    # The volumes launch would create: c9-home is someone else's name, c9-data the cluster's.
    plan = [
        {"name": "home", "tag_name": "c9-home", "mount": "/home", "create": True, "size": 1},
        {"name": "data", "tag_name": "c9-data", "mount": "/data", "create": True, "size": 1},
    ]
    found = info(moto, home, cluster="c9", teardown=True, volumes=plan)
    assert not found.get("failed"), found
    assert found["changed"] is False
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
    check = found["volume_check"]
    assert check["clashing"] == [f"{clash} is named c9-home"]
    assert [v["id"] for v in check["found"]] == [data]
    plan = found["teardown"]
    assert plan["security_groups"] == []
    assert [g["id"] for g in plan["kept_security_groups"]] == [group]
    assert f"instance {stranger} (Name web, running)" in plan["group_notes"][0]
    assert "delete launch template segway-c9-launch-lock (the launch lock)" in plan["plan"]


def test_volumes_given_by_id_snapshots_and_offerings_are_checked(moto, home: Path) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    theirs = ec2.create_volume(
        AvailabilityZone="us-east-1b",
        Size=1,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "segway:cluster", "Value": "other"}]}
        ],
    )["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=theirs)["SnapshotId"]
    plan = [
        {"name": "a", "tag_name": "c1-a", "mount": "/a", "create": False, "id": theirs},
        {
            "name": "b",
            "tag_name": "c1-b",
            "mount": "/b",
            "create": False,
            "id": "vol-0123456789abcdef0",
        },
        {
            "name": "c",
            "tag_name": "c1-c",
            "mount": "/c",
            "create": True,
            "snapshot": "snap-0123456789abcdef0",
        },
        {
            "name": "d",
            "tag_name": "c1-d",
            "mount": "/d",
            "create": True,
            "snapshot": snapshot,
            "size": 1,
        },
    ]
    found = info(moto, home, cluster="c1", volumes=plan, instance_types=["m7i.large", "no.such"])
    check = found["volume_check"]
    assert (check["foreign"], check["foreign_owners"]) == ([theirs], ["other"])
    assert check["missing"] == ["vol-0123456789abcdef0"]
    assert check["snapshot_problems"] == ["snapshot snap-0123456789abcdef0 not found in us-east-1"]
    assert check["zones"] == ["us-east-1b"] and check["busy"] == []
    assert found["offerings"]["us-east-1a"] == ["m7i.large"]
    assert found["offering_zones"] == []  # no zone offers a type that does not exist


def test_hosts_are_the_inventory_scripts_listing(moto, home: Path) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    launch_node(ec2, "listed", "master", "master")
    launch_node(ec2, "listed", "node001", "compute")
    launch_node(ec2, "other", "master", "master")
    unnamed = launch_node(ec2, "listed", "", "compute")  # launched, not named yet
    found = info(
        moto,
        home,
        cluster="listed",
        inventory=True,
        ssh_user="debian",
        ssh_private_key_file="/k/id",
    )
    env = {"SEGWAY_SSH_USER": "debian", "SEGWAY_SSH_PRIVATE_KEY_FILE": "/k/id"}
    script = run_inventory("--list", "--cluster", "listed", endpoint=moto.url, home=home, env=env)
    assert script.returncode == 0, script.stderr
    assert found["inventory"] == json.loads(script.stdout)
    assert [(h["name"], h["groups"]) for h in found["hosts"]] == [
        ("master", ["cluster_listed", "master"]),
        ("node001", ["cluster_listed", "compute"]),
    ]
    assert found["hosts"][0]["vars"]["ansible_ssh_private_key_file"] == "/k/id"
    # What the script says on stderr, the module says as a warning.
    assert f"instance {unnamed} of cluster listed has no node name yet" in script.stderr
    # (Raw module output: each warning is a structured summary holding its text.)
    assert f"instance {unnamed} of cluster listed has no node" in json.dumps(found["warnings"])


def test_ssh_address_private_agrees_with_the_script(moto, home: Path) -> None:
    """ssh_address=private (module) and SEGWAY_SSH_ADDRESS=private (script): every node at
    its private address, as moto gives it, and no jump through the master."""
    moto.reset()
    ec2 = ec2_client(moto.url)
    launch_node(ec2, "inside", "master", "master")
    launch_node(ec2, "inside", "node001", "compute")
    found = info(moto, home, cluster="inside", inventory=True, ssh_address="private")
    env = {"SEGWAY_SSH_ADDRESS": "private"}
    script = run_inventory("--list", "--cluster", "inside", endpoint=moto.url, home=home, env=env)
    assert script.returncode == 0, script.stderr
    assert found["inventory"] == json.loads(script.stdout)
    private = {
        i["InstanceId"]: i["PrivateIpAddress"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    for host in found["hosts"]:
        hv = host["vars"]
        assert hv["ansible_host"] == private[hv["segway_instance_id"]] == hv["segway_private_ip"]
        assert "ProxyCommand" not in hv["ansible_ssh_common_args"]
    # moto gives the master a public address: the default connects there.
    public = info(moto, home, cluster="inside", inventory=True)
    master = next(h for h in public["hosts"] if h["name"] == "master")["vars"]
    assert master["ansible_host"] == master["segway_public_ip"] != master["segway_private_ip"]


def test_a_cluster_that_is_not_a_name_is_refused_before_asking_ec2(home: Path) -> None:
    found = run_module(
        "ec2_cluster_info",
        {"cluster": "al*", "owned": True},
        endpoint="http://127.0.0.1:9",
        home=home,
    )
    assert found["failed"] is True
    assert found["msg"].startswith("cluster 'al*' is not allowed: use a cluster name (1-32")
