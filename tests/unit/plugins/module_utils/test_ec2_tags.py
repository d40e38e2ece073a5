"""Unit tests of plugins/module_utils/ec2_tags.py on moto (mock_aws): one resource's tags
set and removed in one call each, read only when the caller did not read them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from ansible_collections.segway.cluster.plugins.module_utils.ec2_tags import (
    ensure_tags,
    tag_changes,
)
from moto import mock_aws


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "segway:role", "Value": "master"},
                        {"Key": "segway:names:2", "Value": "i-9=node009"},
                    ],
                }
            ],
        )["Instances"][0]["InstanceId"]
        calls: Counter[str] = Counter()
        ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.update([model.name]))
        yield {"ec2": ec2, "instance": instance, "calls": calls}


def tags_of(world: dict[str, Any]) -> dict[str, str]:
    found = world["ec2"].describe_tags(
        Filters=[{"Name": "resource-id", "Values": [world["instance"]]}]
    )["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def test_tag_changes_set_what_differs_and_remove_only_what_holds_the_value() -> None:
    current = {"a": "1", "b": "2", "c": "3"}
    assert tag_changes(current, {"a": "1", "b": "9"}, {"c": "3", "d": "4"}) == (
        {"b": "9"},
        {"c": "3"},
    )
    assert tag_changes(current, {}, {"c": "other"}) == ({}, {})
    assert tag_changes(current, {"c": "5"}, {"c": "3"}) == ({"c": "5"}, {})


def test_names_on_the_master_in_one_call_each_when_the_caller_read_the_tags(
    world: dict[str, Any],
) -> None:
    current = tags_of(world)
    world["calls"].clear()
    done = ensure_tags(
        world["ec2"],
        world["instance"],
        {"segway:names:1": "i-1=node001"},
        {"segway:names:2": "i-9=node009"},
        current=current,
    )
    assert done["changed"] and world["calls"] == Counter({"CreateTags": 1, "DeleteTags": 1})
    assert tags_of(world) == {"segway:role": "master", "segway:names:1": "i-1=node001"}
    assert done["tags"] == tags_of(world)
    world["calls"].clear()
    again = ensure_tags(world["ec2"], world["instance"], {"segway:names:1": "i-1=node001"}, {})
    assert not again["changed"] and world["calls"] == Counter({"DescribeTags": 1})


def test_check_mode_changes_nothing(world: dict[str, Any]) -> None:
    before = tags_of(world)
    done = ensure_tags(
        world["ec2"],
        world["instance"],
        {"x": "y"},
        {"segway:names:2": "i-9=node009"},
        check_mode=True,
    )
    assert done["changed"] and done["diff"]["after"] == {"segway:role": "master", "x": "y"}
    assert tags_of(world) == before
