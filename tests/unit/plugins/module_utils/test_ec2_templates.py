"""Unit tests of plugins/module_utils/ec2_templates.py on moto (mock_aws): a cluster's
launch templates in few calls, found by its tag only, never adopted by name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from ansible_collections.segway.cluster.plugins.module_utils.ec2_templates import (
    TemplateError,
    ensure_templates,
    same_data,
    template_data,
)
from moto import mock_aws

TAGS = {"segway:cluster": "c1", "segway:owner": "arn:aws:iam::123456789012:user/me"}
MASTER = {
    "name": "segway-c1-master-m7i.large",
    "description": "master",
    "image_id": "ami-12345678",
    "instance_type": "m7i.large",
    "key_name": "segway-c1",
    "root_device_name": "/dev/xvda",
    "root_volume_size": 30,
    "root_volume_type": "gp3",
    "iam_instance_profile": "",
    "placement_group": "",
    "security_groups": [],
    "public_ip": True,
}
COMPUTE = {
    **MASTER,
    "name": "segway-c1-compute-m7i.xlarge",
    "instance_type": "m7i.xlarge",
    "security_groups": ["sg-12345678"],
    "public_ip": False,
}


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Counter[str]]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("ec2", region_name="us-east-1")
        calls: Counter[str] = Counter()
        client.meta.events.register(
            "before-call.ec2.*", lambda model, **_: calls.update([model.name])
        )
        yield client, calls


def test_template_data_requires_imdsv2_and_encrypts_the_root_volume() -> None:
    data = template_data({**COMPUTE, "iam_instance_profile": "arn:aws:iam::1:instance-profile/p"})
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    assert data["IamInstanceProfile"] == {"Arn": "arn:aws:iam::1:instance-profile/p"}
    assert data["NetworkInterfaces"] == [
        {
            "DeviceIndex": 0,
            "AssociatePublicIpAddress": False,
            "Groups": ["sg-12345678"],
            "DeleteOnTermination": True,
        }
    ]
    master = template_data({**MASTER, "iam_instance_profile": "p", "placement_group": "pg"})
    assert master["IamInstanceProfile"] == {"Name": "p"}
    assert master["Placement"] == {"GroupName": "pg"}
    assert "NetworkInterfaces" not in master and "InstanceMarketOptions" not in master


def test_same_data_ignores_creation_tags_only() -> None:
    data = template_data(MASTER)
    assert same_data({**data, "TagSpecifications": [{"ResourceType": "x"}]}, data)
    assert not same_data({**data, "UserData": "x"}, data)
    assert not same_data({**data, "InstanceType": "m7i.xlarge"}, data)


def test_first_launch_creates_and_tags_each_template_in_two_calls_and_reads_once(
    ec2: tuple[Any, Counter[str]],
) -> None:
    client, calls = ec2
    done = ensure_templates(client, "c1", [MASTER, COMPUTE], TAGS)
    assert done["changed"] and done["created"] == [MASTER["name"], COMPUTE["name"]]
    assert calls == Counter(
        {"DescribeLaunchTemplates": 1, "CreateLaunchTemplate": 2, "CreateTags": 2}
    )
    found = client.describe_launch_templates(
        Filters=[{"Name": "tag:segway:owner", "Values": [TAGS["segway:owner"]]}]
    )["LaunchTemplates"]
    assert {t["LaunchTemplateName"]: t["LaunchTemplateId"] for t in found} == done["templates"]
    data = client.describe_launch_template_versions(
        LaunchTemplateName=COMPUTE["name"], Versions=["$Default"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert "TagSpecifications" not in data and data["MetadataOptions"]["HttpTokens"] == "required"
    # Again: one look at the templates, their tags and each default version; no change.
    calls.clear()
    again = ensure_templates(client, "c1", [MASTER, COMPUTE], TAGS)
    assert not again["changed"] and again["templates"] == done["templates"], again
    assert calls == Counter(
        {"DescribeLaunchTemplates": 1, "DescribeTags": 1, "DescribeLaunchTemplateVersions": 2}
    )
    # With the templates the caller read (by the tag), they are not read again.
    calls.clear()
    known = ensure_templates(client, "c1", [MASTER, COMPUTE], TAGS, known=done["templates"])
    assert not known["changed"]
    assert calls == Counter({"DescribeTags": 1, "DescribeLaunchTemplateVersions": 2})


def test_a_changed_shape_gets_a_new_default_version_and_missing_tags(
    ec2: tuple[Any, Counter[str]],
) -> None:
    client = ec2[0]
    first = ensure_templates(client, "c1", [COMPUTE], {"segway:cluster": "c1"})
    bigger = {**COMPUTE, "root_volume_size": 50}
    checked = ensure_templates(client, "c1", [bigger], TAGS, check_mode=True)
    assert checked["changed"] and checked["updated"] == [COMPUTE["name"]]
    assert checked["tagged"] == [COMPUTE["name"]]
    assert (
        checked["diff"]["after"][COMPUTE["name"]]["data"]["BlockDeviceMappings"][0]["Ebs"][
            "VolumeSize"
        ]
        == 50
    )
    template_id = first["templates"][COMPUTE["name"]]
    [default] = client.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"]
    assert default["DefaultVersionNumber"] == 1  # check mode changed nothing
    done = ensure_templates(client, "c1", [bigger], TAGS)
    assert done["updated"] == [COMPUTE["name"]] and done["tagged"] == [COMPUTE["name"]]
    [after] = client.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"]
    assert after["DefaultVersionNumber"] == 2
    found = client.describe_tags(Filters=[{"Name": "resource-id", "Values": [template_id]}])
    assert {t["Key"]: t["Value"] for t in found["Tags"]} == TAGS
    assert not ensure_templates(client, "c1", [bigger], TAGS)["changed"]


def test_a_template_of_the_name_that_is_not_the_clusters_is_never_adopted(
    ec2: tuple[Any, Counter[str]],
) -> None:
    client = ec2[0]
    theirs = client.create_launch_template(
        LaunchTemplateName=MASTER["name"], LaunchTemplateData={"InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    with pytest.raises(TemplateError, match="not tagged segway:cluster=c1"):
        ensure_templates(client, "c1", [MASTER], TAGS)
    with pytest.raises(TemplateError, match="not tagged segway:cluster=c1"):
        ensure_templates(client, "c1", [MASTER], TAGS, known={})
    [kept] = client.describe_launch_templates(LaunchTemplateIds=[theirs])["LaunchTemplates"]
    assert not kept.get("Tags") and kept["LatestVersionNumber"] == 1
