"""Unit tests of plugins/module_utils/ec2_groups.py on moto (mock_aws): the cluster's
security group in few calls, never taken over by name, only the rules it should have."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from ansible_collections.segway.cluster.plugins.module_utils.ec2_groups import (
    GroupError,
    current_rules,
    ensure_group,
    permissions,
    wanted_rules,
)
from moto import mock_aws

ADMIN = ["203.0.113.7/32", "2001:db8::/64"]
DESCRIPTIONS = {"ssh": "SSH from admin_cidr", "group": "all traffic between the cluster nodes"}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        calls: Counter[str] = Counter()
        ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.update([model.name]))
        yield {"ec2": ec2, "vpc": vpc, "calls": calls}


def ensure(world: dict[str, Any], cidrs: list[str], **extra: Any) -> dict[str, Any]:
    return ensure_group(
        world["ec2"],
        cluster="c1",
        name="segway-c1",
        description="c1",
        vpc_id=world["vpc"],
        ssh_cidrs=cidrs,
        tags={"segway:owner": "me"},
        descriptions=DESCRIPTIONS,
        **extra,
    )


def group_of(world: dict[str, Any], group_id: str) -> dict[str, Any]:
    return world["ec2"].describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def test_a_new_group_takes_three_calls_and_allows_ssh_and_the_group_only(
    world: dict[str, Any],
) -> None:
    done = ensure(world, ADMIN)
    assert done["created"] and done["changed"]
    assert world["calls"] == Counter(
        {"DescribeSecurityGroups": 1, "CreateSecurityGroup": 1, "AuthorizeSecurityGroupIngress": 1}
    )
    group = group_of(world, done["group_id"])
    assert {t["Key"]: t["Value"] for t in group["Tags"]} == {
        "segway:cluster": "c1",
        "segway:owner": "me",
    }
    rules = group["IpPermissions"]
    assert len(rules) == 2
    [ssh] = [r for r in rules if r["IpProtocol"] == "tcp"]
    assert (ssh["FromPort"], ssh["ToPort"]) == (22, 22)
    assert [c["CidrIp"] for c in ssh["IpRanges"]] == [ADMIN[0]]
    assert [c["CidrIpv6"] for c in ssh["Ipv6Ranges"]] == [ADMIN[1]]
    [internal] = [r for r in rules if r["IpProtocol"] == "-1"]
    assert [p["GroupId"] for p in internal["UserIdGroupPairs"]] == [done["group_id"]]
    assert internal["IpRanges"] == [] and internal["Ipv6Ranges"] == []
    # Again: one look, no change.
    world["calls"].clear()
    again = ensure(world, ADMIN)
    assert not again["changed"] and again["group_id"] == done["group_id"]
    assert world["calls"] == Counter({"DescribeSecurityGroups": 1})
    # The group as the caller read it: no call at all.
    group = group_of(world, done["group_id"])
    world["calls"].clear()
    known = {
        "id": group["GroupId"],
        "tags": {t["Key"]: t["Value"] for t in group["Tags"]},
        "ip_permissions": group["IpPermissions"],
    }
    assert not ensure(world, ADMIN, known=known)["changed"]
    assert not world["calls"]


def test_only_the_difference_is_allowed_and_revoked(world: dict[str, Any]) -> None:
    done = ensure(world, ADMIN)
    world["ec2"].authorize_security_group_ingress(
        GroupId=done["group_id"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    checked = ensure(world, ["198.51.100.0/24"], check_mode=True)
    assert checked["changed"] and checked["authorized"] == ["tcp 22-22 from 198.51.100.0/24"]
    assert len(checked["revoked"]) == 3
    assert len(group_of(world, done["group_id"])["IpPermissions"]) == 3  # check mode
    world["calls"].clear()
    ensure(world, ["198.51.100.0/24"])
    assert world["calls"] == Counter(
        {
            "DescribeSecurityGroups": 1,
            "AuthorizeSecurityGroupIngress": 1,
            "RevokeSecurityGroupIngress": 1,
        }
    )
    group = group_of(world, done["group_id"])
    assert current_rules(group["IpPermissions"]) == wanted_rules(
        ["198.51.100.0/24"], done["group_id"]
    )


def test_a_group_of_the_name_not_tagged_as_the_clusters_is_never_taken_over(
    world: dict[str, Any],
) -> None:
    theirs = world["ec2"].create_security_group(
        GroupName="segway-c1", Description="theirs", VpcId=world["vpc"]
    )["GroupId"]
    with pytest.raises(GroupError, match="not tagged segway:cluster=c1"):
        ensure(world, ADMIN)
    with pytest.raises(GroupError, match="not tagged segway:cluster=c1"):
        ensure(world, ADMIN, known={})  # the caller found none of the cluster's
    group = group_of(world, theirs)
    assert not group.get("Tags") and not group["IpPermissions"]


def test_permissions_group_rules_by_protocol_and_port() -> None:
    perms = permissions(wanted_rules(ADMIN, "sg-1"), DESCRIPTIONS)
    assert sorted(p["IpProtocol"] for p in perms) == ["-1", "tcp"]
    [ssh] = [p for p in perms if p["IpProtocol"] == "tcp"]
    assert ssh["IpRanges"] == [{"CidrIp": ADMIN[0], "Description": "SSH from admin_cidr"}]
    assert ssh["Ipv6Ranges"] == [{"CidrIpv6": ADMIN[1], "Description": "SSH from admin_cidr"}]
    [internal] = [p for p in perms if p["IpProtocol"] == "-1"]
    assert "FromPort" not in internal and internal["UserIdGroupPairs"][0]["GroupId"] == "sg-1"
