"""Unit tests of plugins/module_utils/ec2_cluster.py: what launch and teardown work out
from what segway.cluster.ec2_cluster_info read (the planned volumes' problems, name
clashes, owners, new node names, placement groups, offerings, add_host's hosts)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.segway.cluster.plugins.module_utils.ec2_cluster import (
    LOCK_RUN_TAG,
    HostAccess,
    autoscale_policy,
    build_inventory,
    check_volumes,
    choose_subnet,
    free_node_names,
    inventory_hosts,
    name_clash_labels,
    new_node_names,
    offering_zones,
    owner_check,
    pool_error_text,
    whole,
    with_autoscale_roles,
    with_placement_groups,
)
from ansible_collections.segway.cluster.plugins.modules import ec2_cluster_lock

HOME = {"name": "home", "tag_name": "c1-home", "mount": "/home", "create": True, "size": 50}
DATA = {"name": "data", "tag_name": "c1-data", "mount": "/data", "create": False, "id": "vol-d"}
GENOMES = {
    "name": "genomes",
    "tag_name": "c1-genomes",
    "mount": "/genomes",
    "create": True,
    "snapshot": "snap-1",
    "size": 4,
}


def volume(vid: str, zone: str = "us-east-1a", *attached: str, **tags: str) -> dict[str, Any]:
    return {
        "id": vid,
        "zone": zone,
        "tags": dict(tags),
        "attachments": [{"instance_id": i, "device": "/dev/sdf"} for i in attached],
    }


def check(plan: list[dict[str, Any]], **found: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "cluster": "c1",
        "region": "us-east-1",
        "given": [],
        "owned_volumes": [],
        "name_clashes": [],
        "snapshots": [],
        "master_id": "",
    }
    return check_volumes(plan, **(args | found))


def test_nothing_in_the_way_of_a_first_launch() -> None:
    result = check([HOME])
    assert result == {
        "found": [],
        "clashing": [],
        "foreign": [],
        "foreign_owners": [],
        "missing": [],
        "busy": [],
        "snapshot_problems": [],
        "zones": [],
        "placed": [],
    }


def test_own_volumes_are_found_by_tag_and_given_ones_by_id() -> None:
    home = volume("vol-h", "us-east-1b", "i-master", **{"segway:volume": "home"})
    other = volume("vol-o", "us-east-1b", **{"segway:volume": "scratch"})  # not planned
    given = volume("vol-d", "us-east-1b", **{"segway:attached-to": "c1"})
    result = check([HOME, DATA], given=[given], owned_volumes=[home, other], master_id="i-master")
    assert [v["id"] for v in result["found"]] == ["vol-d", "vol-h"]
    assert result["busy"] == [] and result["missing"] == [] and result["foreign"] == []
    assert result["zones"] == ["us-east-1b"]
    assert result["placed"] == ["vol-d in us-east-1b", "vol-h in us-east-1b"]


def test_a_name_clash_counts_only_for_a_volume_still_to_create() -> None:
    own = volume("vol-h", **{"segway:volume": "home"})
    clashes = [
        {"id": "vol-x", "name": "c1-home"},
        {"id": "vol-y", "name": "c1-genomes"},
        {"id": "vol-z", "name": "c1-other"},
    ]
    snapshots = [{"id": "snap-1", "size": 4}]
    result = check([HOME, GENOMES], owned_volumes=[own], name_clashes=clashes, snapshots=snapshots)
    assert result["clashing"] == ["vol-y is named c1-genomes"]
    assert check([HOME], name_clashes=clashes)["clashing"] == ["vol-x is named c1-home"]


def test_another_clusters_volume_is_named_with_its_owner() -> None:
    theirs = volume("vol-d", **{"segway:cluster": "c2"})
    both = volume("vol-e", **{"segway:attached-to": "c3", "segway:cluster": "c4"})
    plan = [HOME, DATA, {**DATA, "id": "vol-e", "name": "e"}]
    result = check(plan, given=[theirs, both])
    # Each tag that names another cluster lists the volume once, as the message did.
    assert result["foreign"] == ["vol-d", "vol-e", "vol-e"]
    assert result["foreign_owners"] == ["c2", "c3", "c4"]
    mine = volume("vol-d", **{"segway:cluster": "c1", "segway:attached-to": "c1"})
    assert check([HOME, DATA], given=[mine])["foreign"] == []


def test_missing_busy_and_snapshot_problems_are_each_named() -> None:
    busy = volume("vol-d", "us-east-1a", "i-stranger", "i-master")
    plan = [HOME, DATA, {**DATA, "id": "vol-gone"}, GENOMES, {**GENOMES, "snapshot": "snap-2"}]
    snapshots = [{"id": "snap-1", "size": 10}]
    result = check(plan, given=[busy], snapshots=snapshots, master_id="i-master")
    assert result["missing"] == ["vol-gone"]
    assert result["busy"] == ["vol-d is attached to i-stranger"]
    assert result["snapshot_problems"] == [
        "size 4 GiB is smaller than snapshot snap-1 (10 GiB)",
        "snapshot snap-2 not found in us-east-1",
    ]
    no_size = {key: value for key, value in GENOMES.items() if key != "size"}
    assert check([no_size], snapshots=snapshots)["snapshot_problems"] == []


def test_volumes_in_two_zones_are_listed_with_their_zone() -> None:
    a = volume("vol-d", "us-east-1a")
    b = volume("vol-h", "us-east-1c", **{"segway:volume": "home"})
    result = check([HOME, DATA], given=[a], owned_volumes=[b])
    assert result["zones"] == ["us-east-1a", "us-east-1c"]
    assert result["placed"] == ["vol-d in us-east-1a", "vol-h in us-east-1c"]


def test_name_clashes_count_in_the_clusters_vpc_and_for_an_imported_key() -> None:
    clashes = [
        {"kind": "key pair", "id": "segway-c1", "vpc_id": ""},
        {"kind": "security group", "id": "sg-1", "vpc_id": "vpc-1"},
        {"kind": "security group", "id": "sg-2", "vpc_id": "vpc-2"},
    ]
    assert name_clash_labels(clashes, "vpc-1", True) == [
        "security group sg-1",
        "key pair segway-c1",
    ]
    assert name_clash_labels(clashes, "vpc-3", False) == []


def test_owner_check_names_other_owners_once_and_skips_unowned() -> None:
    resources = [
        {"kind": "instance", "id": "i-1", "owner": "arn:b"},
        {"kind": "volume", "id": "vol-1", "owner": ""},
        {"kind": "launch template", "id": "lt-1", "owner": "arn:me"},
        {"kind": "key pair", "id": "k", "owner": "arn:c"},
        {"kind": "security group", "id": "sg-1", "owner": "arn:b"},
    ]
    result = owner_check(resources, "arn:me")
    assert result["owners"] == ["arn:b", "arn:c"]
    assert result["labels"] == ["instance i-1", "key pair k", "security group sg-1"]
    assert [r["id"] for r in result["foreign"]] == ["i-1", "k", "sg-1"]
    assert owner_check(resources[1:3], "arn:me") == {
        "caller": "arn:me",
        "foreign": [],
        "owners": [],
        "labels": [],
    }


OWNER = "arn:aws:iam::123456789012:user/alice"
AUTOSCALER = "arn:aws:sts::123456789012:assumed-role/segway-c1-autoscale/i-0123456789abcdef0"


def test_the_clusters_autoscaler_acts_for_its_only_owner() -> None:
    resources = [
        {"kind": "instance", "id": "i-1", "owner": OWNER},
        {"kind": "launch template", "id": "lt-1", "owner": OWNER},
        {"kind": "volume", "id": "vol-1", "owner": ""},
    ]
    result = owner_check(resources, AUTOSCALER, "c1")
    assert result == {"caller": OWNER, "foreign": [], "owners": [], "labels": []}
    # Without the cluster (or for another cluster) it is a stranger like any other.
    for cluster in ("", "c2"):
        other = owner_check(resources, AUTOSCALER, cluster)
        assert other["caller"] == AUTOSCALER and other["owners"] == [OWNER], cluster


@pytest.mark.parametrize(
    "caller",
    [
        "arn:aws:sts::123456789012:assumed-role/segway-c1-autoscale-x/i-1",  # another role
        "arn:aws:iam::123456789012:role/segway-c1-autoscale",  # the role, not a session
        "arn:aws:sts::123456789012:assumed-role/segway-c1-autoscale/i-1/x",
        "arn:aws:sts::12345678901:assumed-role/segway-c1-autoscale/i-1",
    ],
)
def test_only_a_session_of_the_clusters_autoscaler_role_acts_for_the_owner(caller: str) -> None:
    resources = [{"kind": "instance", "id": "i-1", "owner": OWNER}]
    result = owner_check(resources, caller, "c1")
    assert result["caller"] == caller and result["owners"] == [OWNER]


def test_the_autoscaler_does_not_pick_among_several_owners() -> None:
    resources = [
        {"kind": "instance", "id": "i-1", "owner": OWNER},
        {"kind": "instance", "id": "i-2", "owner": "arn:aws:iam::123456789012:user/bob"},
    ]
    result = owner_check(resources, AUTOSCALER, "c1")
    assert result["caller"] == AUTOSCALER and len(result["owners"]) == 2


def test_new_nodes_get_the_lowest_free_numbers_oldest_first() -> None:
    compute = {"segway:cluster": "c1", "segway:role": "compute"}
    instances = [
        {
            "instance_id": "i-a",
            "tags": {**compute, "segway:node": "node002"},
            "launch_time": "2025-01-01",
        },
        {
            "instance_id": "i-b",
            "tags": {**compute, "aws:ec2launchtemplate:id": "lt-spot"},
            "ami_launch_index": 1,
            "launch_time": "2025-01-02",
        },
        {
            "instance_id": "i-c",
            "tags": {**compute, "aws:ec2launchtemplate:id": "lt-od"},
            "ami_launch_index": 0,
            "launch_time": "2025-01-02",
        },
        {"instance_id": "i-d", "tags": compute, "ami_launch_index": 0, "launch_time": "2025-01-01"},
    ]
    templates = {
        "segway-c1-compute-m7i.xlarge": "lt-od",
        "segway-c1-compute-m7i.xlarge-spot": "lt-spot",
    }
    assert new_node_names(instances, templates) == [
        {"id": "i-d", "name": "node001", "market": "on-demand"},
        {"id": "i-c", "name": "node003", "market": "on-demand"},
        {"id": "i-b", "name": "node004", "market": "spot"},
    ]
    assert new_node_names(instances[:1], templates) == []


def test_placement_groups_of_the_cluster_join_the_plan() -> None:
    teardown = {"plan": ["terminate instance i-1"], "empty": False, "key_pairs": []}
    groups = [
        {"name": "segway-c1", "tags": {"segway:cluster": "c1"}},
        {"name": "segway-c2", "tags": {"segway:cluster": "c2"}},
        {"name": "untagged"},
    ]
    result = with_placement_groups(teardown, groups, "c1")
    assert result["placement_groups"] == ["segway-c1"]
    assert result["plan"] == ["terminate instance i-1", "delete placement group segway-c1"]
    assert result["key_pairs"] == [] and teardown["plan"] == ["terminate instance i-1"]
    nothing = {"plan": [], "empty": True}
    assert with_placement_groups(nothing, groups, "c1")["empty"] is False
    assert with_placement_groups(nothing, groups[1:], "c1") == {
        "plan": [],
        "empty": True,
        "placement_groups": [],
    }


def test_subnet_is_the_given_one_the_masters_or_a_default_one_offering_the_types() -> None:
    defaults = [
        {"subnet_id": "subnet-c", "vpc_id": "vpc-1", "availability_zone": "us-east-1c"},
        {"subnet_id": "subnet-a", "vpc_id": "vpc-1", "availability_zone": "us-east-1a"},
        {"subnet_id": "subnet-b", "vpc_id": "vpc-1", "availability_zone": "us-east-1b"},
    ]
    offering = ["us-east-1b", "us-east-1c"]
    given = {"subnet_id": "subnet-x", "vpc_id": "vpc-2", "availability_zone": "us-east-1d"}
    master = {"id": "i-1", "subnet_id": "subnet-m", "vpc_id": "vpc-3", "zone": "us-east-1e"}
    pick = choose_subnet
    assert (
        pick(defaults, wanted_zone="", offering_zones=offering, given=given, master=master) == given
    )
    assert pick(defaults, wanted_zone="", offering_zones=offering, master=master) == {
        "subnet_id": "subnet-m",
        "vpc_id": "vpc-3",
        "availability_zone": "us-east-1e",
    }
    # No zone to keep to: the first zone (by name) that offers the types, else the first.
    assert pick(defaults, wanted_zone="", offering_zones=offering, master={})["subnet_id"] == (
        "subnet-b"
    )
    assert pick(defaults, wanted_zone="", offering_zones=[])["subnet_id"] == "subnet-a"
    # A zone to keep to (the volumes'): that zone's subnet, offered or not.
    assert pick(defaults, wanted_zone="us-east-1a", offering_zones=offering)["subnet_id"] == (
        "subnet-a"
    )
    assert pick(defaults, wanted_zone="us-west-2a", offering_zones=offering) == {}


def test_offering_zones_offer_every_type() -> None:
    offerings = {"us-east-1a": ["m7i.large"], "us-east-1b": ["m7i.large", "m7i.xlarge"]}
    assert offering_zones(offerings, ["m7i.large", "m7i.xlarge"]) == ["us-east-1b"]
    assert offering_zones(offerings, ["m7i.large"]) == ["us-east-1a", "us-east-1b"]
    assert offering_zones(offerings, ["x9.huge"]) == []


def test_inventory_hosts_carry_their_groups_and_every_variable() -> None:
    def node(name: str, role: str) -> dict[str, Any]:
        return {
            "InstanceId": f"i-{name}",
            "InstanceType": "m7i.large",
            "PrivateIpAddress": "10.0.0.1",
            "Tags": [
                {"Key": "segway:cluster", "Value": "my-c1"},
                {"Key": "segway:role", "Value": role},
                {"Key": "segway:node", "Value": name},
            ],
        }

    inventory = build_inventory(
        [node("master", "master"), node("node001", "compute")], {}, {}, HostAccess(cluster="my-c1")
    )
    hosts = inventory_hosts(inventory)
    assert [(h["name"], h["groups"]) for h in hosts] == [
        ("master", ["cluster_my_c1", "master"]),
        ("node001", ["cluster_my_c1", "compute"]),
    ]
    assert hosts[1]["vars"] == inventory["_meta"]["hostvars"]["node001"]
    assert inventory_hosts({"_meta": {"hostvars": {}}, "all": {"children": []}}) == []


@pytest.mark.parametrize(
    ("value", "expected"), [(3, 3), ("12", 12), ("2.5", 2), (None, 0), ("lots", 0)]
)
def test_whole_reads_numbers_as_jinja_int_does(value: Any, expected: int) -> None:
    assert whole(value) == expected


# ---------------------------------------------------------------- the autoscaler's IAM role


def test_autoscale_policy_grants_no_iam_and_scopes_every_write_to_the_cluster() -> None:
    policy = autoscale_policy("c1", "eu-west-1", "123456789012")
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    actions = {
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert all(a.startswith("ec2:") for a in actions), actions
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    # Only Describe calls on every resource; each write carries a condition.
    for stmt in policy["Statement"]:
        acts = [stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"]
        if stmt["Resource"] == "*":
            assert all(a.startswith("ec2:Describe") for a in acts), stmt
        else:
            assert stmt["Condition"], stmt
    template = "arn:aws:ec2:eu-west-1:123456789012:launch-template/*"
    launch = by_sid["LaunchOnlyFromTheClustersTemplates"]
    assert launch["Resource"] == template
    assert launch["Condition"] == {
        "StringEquals": {"aws:ResourceTag/segway:cluster": "c1"},
        "Null": {f"aws:ResourceTag/{LOCK_RUN_TAG}": "true"},  # never from a launch lock
    }
    assert by_sid["WhatATemplateLaunches"]["Condition"] == {
        "ArnLike": {"ec2:LaunchTemplate": template}
    }
    # The compute nodes' instant fleet: tagged with the cluster at creation, from the
    # cluster's templates only (never a launch lock), tagging only at creation.
    fleet = "arn:aws:ec2:eu-west-1:123456789012:fleet/*"
    assert by_sid["LaunchFleetsTaggedWithTheCluster"]["Resource"] == fleet
    assert by_sid["LaunchFleetsTaggedWithTheCluster"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/segway:cluster": "c1"}
    }
    assert by_sid["FleetsOnlyFromTheClustersTemplates"]["Resource"] == template
    assert by_sid["FleetsOnlyFromTheClustersTemplates"]["Condition"] == launch["Condition"]
    tagging = by_sid["TagWhatItCreates"]
    assert fleet in tagging["Resource"]
    assert "CreateFleet" in tagging["Condition"]["StringEquals"]["ec2:CreateAction"]
    assert by_sid["TerminateOnlyTheClustersComputeNodes"]["Condition"]["StringEquals"] == {
        "aws:ResourceTag/segway:cluster": "c1",
        "aws:ResourceTag/segway:role": "compute",
    }
    # The lock it may create must carry the lock's tag; it may delete only such a template.
    assert by_sid["TakeTheLaunchLock"]["Condition"]["Null"] == {
        f"aws:RequestTag/{LOCK_RUN_TAG}": "false"
    }
    assert by_sid["ReleaseTheLaunchLock"]["Condition"]["Null"] == {
        f"aws:ResourceTag/{LOCK_RUN_TAG}": "false"
    }
    assert LOCK_RUN_TAG == ec2_cluster_lock.RUN_TAG


@pytest.mark.parametrize(
    ("cluster", "region", "account", "bad"),
    [
        ("C1", "eu-west-1", "123456789012", "cluster name 'C1'"),
        ("c1", "eu-west-1a", "123456789012", "region 'eu-west-1a'"),
        ("c1", "eu-west-1", "1234", "account '1234'"),
    ],
)
def test_autoscale_policy_refuses_bad_names(
    cluster: str, region: str, account: str, bad: str
) -> None:
    with pytest.raises(ValueError, match=bad):
        autoscale_policy(cluster, region, account)


def test_autoscale_role_joins_the_plan_only_when_tagged_with_the_cluster() -> None:
    teardown = {"plan": ["terminate instance i-1"], "empty": False}
    roles = [
        {"role_name": "segway-c1-autoscale", "tags": {"segway:cluster": "c1"}},
        {"role_name": "segway-c1-autoscale-x", "tags": {"segway:cluster": "c1"}},
        {"role_name": "segway-c2-autoscale", "tags": {"segway:cluster": "c2"}},
    ]
    result = with_autoscale_roles(teardown, roles, "c1")
    assert result["iam_roles"] == ["segway-c1-autoscale"]
    assert result["plan"][-1] == (
        "delete IAM role and instance profile segway-c1-autoscale (the autoscaler's)"
    )
    nothing = {"plan": [], "empty": True}
    # Someone else's role of the same name (not tagged with the cluster) is left alone.
    foreign = [{"role_name": "segway-c1-autoscale", "tags": {}}]
    assert with_autoscale_roles(nothing, foreign, "c1") == {
        "plan": [],
        "empty": True,
        "iam_roles": [],
    }
    assert with_autoscale_roles(nothing, roles, "c1")["empty"] is False


def test_free_node_names_are_the_lowest_numbers_no_node_holds() -> None:
    existing = [{"id": "i-1", "node": "node002"}, {"id": "i-2", "node": ""}, {"id": "i-3"}]
    assert free_node_names(existing, 3, "c1") == [
        {"segway:node": "node001", "Name": "c1-node001"},
        {"segway:node": "node003", "Name": "c1-node003"},
        {"segway:node": "node004", "Name": "c1-node004"},
    ]
    assert free_node_names([], "2", "c1")[1] == {"segway:node": "node002", "Name": "c1-node002"}
    assert free_node_names(existing, 0, "c1") == []


def test_pool_error_text_names_the_pool_and_ec2s_answer() -> None:
    error = {
        "instance_type": "m7i.xlarge",
        "subnet_id": "subnet-1",
        "lifecycle": "spot",
        "code": "InsufficientInstanceCapacity",
        "message": "There is no Spot capacity available that matches your request.",
    }
    assert pool_error_text(error) == (
        "m7i.xlarge in subnet-1 (spot): InsufficientInstanceCapacity: There is no Spot "
        "capacity available that matches your request."
    )
    whole = {"instance_type": None, "subnet_id": None, "lifecycle": "spot", "code": "X"}
    assert pool_error_text(whole) == "every type (spot): X"
