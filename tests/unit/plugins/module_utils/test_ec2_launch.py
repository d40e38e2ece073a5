"""Unit tests of plugins/module_utils/ec2_launch.py on moto (mock_aws): a cluster's master
in three calls, launched only when none is tagged as the master, IMDSv2 required."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from ansible_collections.segway.cluster.plugins.module_utils.ec2_launch import (
    LaunchError,
    ensure_instance,
    run_request,
    wait_running,
)
from moto import mock_aws

TAGS = {
    "segway:cluster": "c1",
    "segway:owner": "arn:aws:iam::123456789012:user/me",
    "segway:role": "master",
    "Name": "c1-master",
}
MATCH = {"segway:cluster": "c1", "segway:role": "master"}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ec2.create_launch_template(
            LaunchTemplateName="segway-c1-master-m7i.large",
            LaunchTemplateData={"ImageId": image, "InstanceType": "m7i.large"},
        )
        subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])[
            "Subnets"
        ][0]
        group = ec2.create_security_group(
            GroupName="segway-c1", Description="c1", VpcId=subnet["VpcId"]
        )["GroupId"]
        calls: Counter[str] = Counter()
        ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.update([model.name]))
        params = {
            "launch_template": {"name": "segway-c1-master-m7i.large", "version": "$Default"},
            "subnet_id": subnet["SubnetId"],
            "security_groups": [group],
            "public_ip": True,
            "match_tags": MATCH,
            "tags": TAGS,
            "iam_instance_profile": "",
            "wait": True,
            "wait_timeout": 30,
        }
        yield {"ec2": ec2, "calls": calls, "params": params, "group": group, "subnet": subnet}


def test_launches_one_master_in_three_calls_then_finds_it_in_one(world: dict[str, Any]) -> None:
    ec2, calls = world["ec2"], world["calls"]
    done = ensure_instance(ec2, world["params"], sleep=lambda _s: None)
    assert done["changed"] and done["instance"]["state"] == "running"
    assert calls == Counter({"DescribeInstances": 2, "RunInstances": 1})
    [inst] = [
        i
        for r in ec2.describe_instances(InstanceIds=done["instance_ids"])["Reservations"]
        for i in r["Instances"]
    ]
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert {k: v for k, v in tags.items() if not k.startswith("aws:")} == TAGS
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["SubnetId"] == world["subnet"]["SubnetId"]
    # moto lists the groups on the interface only (EC2 also in SecurityGroups).
    assert [g["GroupId"] for g in inst["NetworkInterfaces"][0]["Groups"]] == [world["group"]]
    calls.clear()
    again = ensure_instance(ec2, world["params"], sleep=lambda _s: None)
    assert not again["changed"] and again["instance_ids"] == done["instance_ids"]
    assert calls == Counter({"DescribeInstances": 1})


def test_check_mode_launches_nothing(world: dict[str, Any]) -> None:
    ec2 = world["ec2"]
    done = ensure_instance(ec2, world["params"], check_mode=True)
    assert done["changed"] and done["instance_ids"] == []
    assert done["diff"]["after"]["launch"]["MetadataOptions"]["HttpTokens"] == "required"
    assert not ec2.describe_instances()["Reservations"]


def test_match_tags_must_be_among_the_tags(world: dict[str, Any]) -> None:
    params = {**world["params"], "match_tags": {"segway:cluster": "c1", "segway:role": "compute"}}
    with pytest.raises(LaunchError, match="match_tags"):
        ensure_instance(world["ec2"], params)
    assert not world["ec2"].describe_instances()["Reservations"]


def test_run_request_tags_instance_and_volumes_and_names_the_profile() -> None:
    request = run_request(
        {"id": "lt-1"},
        subnet_id="subnet-1",
        security_groups=["sg-1"],
        public_ip=False,
        tags={"a": "b"},
        iam_instance_profile="arn:aws:iam::1:instance-profile/p",
    )
    assert request["LaunchTemplate"] == {"LaunchTemplateId": "lt-1", "Version": "$Default"}
    assert [s["ResourceType"] for s in request["TagSpecifications"]] == ["instance", "volume"]
    assert request["IamInstanceProfile"] == {"Arn": "arn:aws:iam::1:instance-profile/p"}
    assert request["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is False
    assert (request["MinCount"], request["MaxCount"]) == (1, 1)


class Pending:
    """describe_instances answering pending, then a given state."""

    def __init__(self, states: list[str]) -> None:
        self.states = states

    def describe_instances(self, **_kwargs: Any) -> dict[str, Any]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"Reservations": [{"Instances": [{"InstanceId": "i-1", "State": {"Name": state}}]}]}


def test_wait_running_waits_and_refuses_a_stopped_or_late_instance() -> None:
    slept: list[float] = []
    found = wait_running(Pending(["pending", "pending", "running"]), "i-1", 60, sleep=slept.append)
    assert found["State"]["Name"] == "running" and len(slept) == 2
    with pytest.raises(LaunchError, match="terminated"):
        wait_running(Pending(["pending", "terminated"]), "i-1", 60, sleep=lambda _s: None)
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(LaunchError, match="within 30 s"):
        wait_running(
            Pending(["pending"]), "i-1", 30, sleep=lambda _s: None, clock=lambda: next(ticks)
        )
