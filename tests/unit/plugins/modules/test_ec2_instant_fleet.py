"""segway.cluster.ec2_instant_fleet against moto_server, through a recording proxy.

The module runs as Ansible runs it (its file, given its arguments as JSON; the helper of
tests/ec2) against moto_server 5.2.5 behind ``FleetProxy`` (tests/ec2/ec2_fleet.py), an
``AwsProxy`` that also keeps every request's form fields, so the tests read the
CreateFleet request exactly as EC2 would receive it, and that plays EC2's limited
capacity where moto has no limit (``proxy.capacity["spot"] = 2``): what moto does and
does not do with instant fleets is said there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "ec2"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ansible_collections.segway.cluster.plugins.modules import ec2_instant_fleet
from ec2_fleet import NO_CAPACITY, FleetProxy
from ec2_moto import MotoServer, ec2_client
from ec2_testlib import run_module
from test_documentation import mismatches

TYPES = ["m7i.large", "m6i.large"]
MATCH = {"segway:cluster": "c1", "segway:role": "compute"}
TAGS = {**MATCH, "segway:owner": "arn:aws:iam::123456789012:user/alice"}

# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    server = MotoServer(log=log).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def account(moto: MotoServer) -> dict[str, Any]:
    """A fresh moto account with a compute launch template and two subnets."""
    moto.reset()
    ec2 = ec2_client(moto.url)
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="segway-c1-compute",
        LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"])[:2]
    return {"ec2": ec2, "image": image, "template": template, "subnets": subnets}


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FleetProxy]:
    with FleetProxy(moto.url) as fleet_proxy:
        yield fleet_proxy


def fleet(proxy: FleetProxy, home: Path, account: Mapping[str, Any], **args: Any) -> dict:
    """Run the module through the proxy with these args over a sensible base."""
    base: dict[str, Any] = {
        "launch_template": {"id": account["template"]},
        "instance_types": TYPES,
        "match_tags": MATCH,
        "tags": TAGS,
    }
    return run_module("ec2_instant_fleet", {**base, **args}, endpoint=proxy.url, home=home)


def matching(ec2: Any, states: tuple[str, ...] = ("pending", "running")) -> dict[str, dict]:
    """The instances moto holds with the match tags, by id."""
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in MATCH.items()]
    filters.append({"Name": "instance-state-name", "Values": list(states)})
    found = ec2.describe_instances(Filters=filters)["Reservations"]
    return {i["InstanceId"]: i for r in found for i in r["Instances"]}


def warnings_of(result: Mapping[str, Any]) -> list[str]:
    """The warnings' texts (ansible-core 2.19 returns each as a WarningSummary dict)."""
    return [
        w if isinstance(w, str) else w.get("event", {}).get("msg", "")
        for w in result.get("warnings", [])
    ]


def tag_dict(instance: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def launch_tagged(ec2: Any, image: str, count: int, **tags: str) -> list[str]:
    made = ec2.run_instances(
        ImageId=image,
        MinCount=count,
        MaxCount=count,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )
    return [i["InstanceId"] for i in made["Instances"]]


# ---------------------------------------------------------------------------- tests


def test_request_tags_at_creation_and_rerun_launches_nothing(proxy, home, account) -> None:
    result = fleet(proxy, home, account, count=3, subnet_ids=account["subnets"])
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert (result["requested"], result["fulfilled"], result["short_by"]) == (3, 3, 0)
    assert result["errors"] == [] and result["existing_ids"] == []
    assert result["diff"] == {"before": {"instances": 0}, "after": {"instances": 3}}
    assert len(result["fleet_ids"]) == 1 and len(result["instance_ids"]) == 3
    assert {i["lifecycle"] for i in result["instances"]} == {"spot"}
    assert {i["subnet_id"] for i in result["instances"]} <= set(account["subnets"])
    # The request EC2 gets: one instant fleet, one template, every type x subnet an override.
    [request] = proxy.fleet_requests()
    assert request["type"] == "instant" and request["client_token"]
    assert request["template"] == {"LaunchTemplateId": account["template"], "Version": "$Default"}
    assert request["configs"] == 1
    assert request["overrides"] == [
        {"InstanceType": t, "SubnetId": s} for t in TYPES for s in account["subnets"]
    ]
    assert (request["market"], request["total"]) == ("spot", 3)
    assert request["spot_strategy"] == "price-capacity-optimized"
    assert request["on_demand_strategy"] is None
    assert request["tags"] == {"instance": TAGS, "volume": TAGS, "fleet": TAGS}
    assert proxy.counts() == {"DescribeInstances": 1, "DescribeInstanceTypes": 1, "CreateFleet": 1}
    # Tagged at creation (no CreateTags call above), and really there, as spot.
    launched = matching(account["ec2"])
    assert set(launched) == set(result["instance_ids"])
    assert all(tag_dict(i) == TAGS for i in launched.values())
    assert {i.get("InstanceLifecycle") for i in launched.values()} == {"spot"}

    proxy.clear()
    again = fleet(proxy, home, account, count=3, subnet_ids=account["subnets"])
    assert not again.get("failed"), again
    assert again["changed"] is False
    assert again["instance_ids"] == [] and again["requested"] == 0
    assert again["existing_ids"] == sorted(result["instance_ids"])
    assert again["diff"] == {"before": {"instances": 3}, "after": {"instances": 3}}
    assert proxy.counts() == {"DescribeInstances": 1}


def test_only_the_difference_is_launched_and_nothing_terminated(proxy, home, account) -> None:
    ec2, image = account["ec2"], account["image"]
    running = launch_tagged(ec2, image, 2, **MATCH)
    stopped = launch_tagged(ec2, image, 1, **MATCH)
    ec2.stop_instances(InstanceIds=stopped)
    gone = launch_tagged(ec2, image, 1, **MATCH)
    ec2.terminate_instances(InstanceIds=gone)
    launch_tagged(ec2, image, 1, **{**MATCH, "segway:role": "master"})
    launch_tagged(ec2, image, 1, **{**MATCH, "segway:cluster": "c2"})

    result = fleet(proxy, home, account, count=5)
    assert not result.get("failed"), result
    # Only the two running ones count: the stopped and the terminated one do not.
    assert result["existing_ids"] == sorted(running)
    assert (result["requested"], result["fulfilled"]) == (3, 3)
    assert [r["total"] for r in proxy.fleet_requests()] == [3]
    assert result["diff"] == {"before": {"instances": 2}, "after": {"instances": 5}}
    assert len(matching(ec2)) == 5

    # More than count: nothing launched, nothing terminated, the excess reported.
    proxy.clear()
    fewer = fleet(proxy, home, account, count=1)
    assert not fewer.get("failed"), fewer
    assert fewer["changed"] is False and fewer["excess"] == 4 and fewer["requested"] == 0
    assert any("4 more than count=1" in w for w in warnings_of(fewer)), fewer
    assert proxy.counts() == {"DescribeInstances": 1}
    assert len(matching(ec2)) == 5
    assert set(matching(ec2, ("stopped",))) == set(stopped)


def test_partial_fulfilment_reports_pool_errors(proxy, home, account) -> None:
    proxy.capacity["spot"] = 2
    result = fleet(proxy, home, account, count=5, subnet_ids=account["subnets"][:1])
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert (result["requested"], result["fulfilled"], result["short_by"]) == (5, 2, 3)
    assert len(result["instance_ids"]) == 2 and len(matching(account["ec2"])) == 2
    assert result["errors"] == [
        {
            "instance_type": t,
            "subnet_id": account["subnets"][0],
            "lifecycle": "spot",
            "code": "InsufficientInstanceCapacity",
            "message": NO_CAPACITY["spot"],
        }
        for t in TYPES
    ]
    [warning] = [w for w in warnings_of(result) if "short by 3" in w]
    assert "launched 2 of the 5" in warning
    assert all(
        f"{t} in {account['subnets'][0]} (spot): InsufficientInstanceCapacity" in warning
        for t in TYPES
    )
    assert result["diff"] == {"before": {"instances": 0}, "after": {"instances": 2}}
    assert proxy.counts()["CreateFleet"] == 1

    # fail_on_partial: the same shortfall fails, keeping (and naming) what was launched.
    proxy.clear()
    proxy.capacity["spot"] = 1
    strict = fleet(proxy, home, account, count=5, fail_on_partial=True)
    assert strict["failed"] is True and strict["changed"] is True
    assert (strict["requested"], strict["fulfilled"], strict["short_by"]) == (3, 1, 2)
    assert f"The 1 launched ({strict['instance_ids'][0]}) are kept" in strict["msg"]
    assert "InsufficientInstanceCapacity" in strict["msg"]
    assert len(matching(account["ec2"])) == 3


def test_zero_fulfilment_fails_listing_the_errors(proxy, home, account) -> None:
    proxy.capacity["spot"] = 0
    result = fleet(proxy, home, account, count=4)
    assert result["failed"] is True and result["changed"] is False
    assert result["fulfilled"] == 0 and result["short_by"] == 4
    assert "launched 0 of the 4 missing instances" in result["msg"]
    assert "Nothing was launched" in result["msg"]
    for instance_type in TYPES:
        assert (
            f"{instance_type} in the template subnet (spot): InsufficientInstanceCapacity"
            in result["msg"]
        )
    assert [e["instance_type"] for e in result["errors"]] == TYPES
    assert matching(account["ec2"]) == {}


def test_on_demand_fallback_asks_for_exactly_the_remainder(proxy, home, account) -> None:
    proxy.capacity["spot"] = 1
    result = fleet(proxy, home, account, count=4, on_demand_fallback=True)
    assert not result.get("failed"), result
    assert (result["requested"], result["fulfilled"], result["short_by"]) == (4, 4, 0)
    spot, on_demand = proxy.fleet_requests()
    assert (spot["market"], spot["total"], spot["spot_strategy"]) == (
        "spot",
        4,
        "price-capacity-optimized",
    )
    assert (on_demand["market"], on_demand["total"], on_demand["on_demand_strategy"]) == (
        "on-demand",
        3,
        "lowest-price",
    )
    assert on_demand["spot_strategy"] is None
    assert on_demand["tags"]["instance"] == TAGS
    assert on_demand["client_token"] != spot["client_token"]
    assert len(result["fleet_ids"]) == 2
    by_market = {
        m: [i["instance_id"] for i in result["instances"] if i["lifecycle"] == m]
        for m in ("spot", "on-demand")
    }
    assert (len(by_market["spot"]), len(by_market["on-demand"])) == (1, 3)
    launched = matching(account["ec2"])
    assert {launched[i].get("InstanceLifecycle") for i in by_market["spot"]} == {"spot"}
    assert {launched[i].get("InstanceLifecycle") for i in by_market["on-demand"]} == {None}
    # The spot pools' errors stay in the result, marked spot; nothing is short, no warning.
    assert {e["lifecycle"] for e in result["errors"]} == {"spot"}
    assert not [w for w in warnings_of(result) if "short by" in w]


def test_on_demand_prioritized_by_template_name(proxy, home, account) -> None:
    result = fleet(
        proxy,
        home,
        account,
        count=2,
        market="on-demand",
        on_demand_allocation_strategy="prioritized",
        launch_template={"name": "segway-c1-compute", "version": "$Latest"},
    )
    assert not result.get("failed"), result
    [request] = proxy.fleet_requests()
    assert request["template"] == {"LaunchTemplateName": "segway-c1-compute", "Version": "$Latest"}
    assert (request["market"], request["on_demand_strategy"]) == ("on-demand", "prioritized")
    assert request["spot_strategy"] is None
    assert request["overrides"] == [
        {"InstanceType": "m7i.large", "Priority": "0.0"},
        {"InstanceType": "m6i.large", "Priority": "1.0"},
    ]
    assert {i["lifecycle"] for i in result["instances"]} == {"on-demand"}


def test_check_mode_launches_nothing(proxy, home, account) -> None:
    launch_tagged(account["ec2"], account["image"], 1, **MATCH)
    result = fleet(proxy, home, account, count=6, _ansible_check_mode=True, _ansible_diff=True)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert (result["requested"], result["instance_ids"]) == (5, [])
    assert result["plan"]["count"] == 5 and result["plan"]["market"] == "spot"
    assert result["plan"]["instance_types"] == TYPES
    assert result["diff"] == {"before": {"instances": 1}, "after": {"instances": 6}}
    assert proxy.counts() == {"DescribeInstances": 1, "DescribeInstanceTypes": 1}
    assert len(matching(account["ec2"])) == 1


def test_unknown_instance_type_fails_before_any_launch(proxy, home, account) -> None:
    result = fleet(proxy, home, account, count=2, instance_types=["m7i.large", "m7i.nonesuch"])
    assert result["failed"] is True
    assert result["msg"].startswith("instance_types:")
    assert "m7i.nonesuch" in result["msg"] and "Nothing was launched" in result["msg"]
    assert "CreateFleet" not in proxy.counts()
    assert matching(account["ec2"]) == {}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"instance_types": []}, "instance_types: give at least one instance type"),
        (
            {"instance_types": ["m7i.large", "m6i.large", "m7i.large"]},
            "instance_types: m7i.large given more than once",
        ),
        ({"count": -1}, "count: must be 0 or more, got -1"),
        ({"market": "reserved"}, "market must be one of: spot, on-demand, got: reserved"),
        (
            {"tags": {"segway:cluster": "c1", "segway:role": "master"}},
            "match_tags: segway:role=compute not in tags",
        ),
        ({"tags": {"segway:cluster": "c1"}}, "match_tags: segway:role=compute not in tags"),
        ({"match_tags": {}, "tags": {}}, "match_tags: must name at least one tag"),
        ({"launch_template": {"id": "lt-1", "name": "x"}}, "mutually exclusive: id|name"),
        ({"spot_max_price": "cheap"}, "spot_max_price: must be a positive hourly price"),
        ({"spot_max_price": "0"}, "spot_max_price: must be a positive hourly price"),
    ],
)
def test_bad_input_fails_naming_the_option(proxy, home, account, args, expected) -> None:
    result = fleet(proxy, home, account, **{"count": 2, **args})
    assert result["failed"] is True
    assert expected in result["msg"], result["msg"]
    assert proxy.counts() == {}  # before any call to EC2


def test_sixteen_nodes_take_a_constant_number_of_calls(proxy, home, account) -> None:
    result = fleet(proxy, home, account, count=16, subnet_ids=account["subnets"])
    assert not result.get("failed"), result
    assert result["fulfilled"] == 16 and len(matching(account["ec2"])) == 16
    assert proxy.counts() == {"DescribeInstances": 1, "DescribeInstanceTypes": 1, "CreateFleet": 1}

    # 16 more with the fallback and a spot shortfall: still 4 calls, none per instance.
    proxy.clear()
    proxy.capacity["spot"] = 10
    more = fleet(proxy, home, account, count=32, on_demand_fallback=True)
    assert not more.get("failed"), more
    assert (more["requested"], more["fulfilled"]) == (16, 16)
    assert [r["total"] for r in proxy.fleet_requests()] == [16, 6]
    assert proxy.counts() == {"DescribeInstances": 1, "DescribeInstanceTypes": 1, "CreateFleet": 2}
    assert sum(proxy.counts().values()) <= 4


def test_throttling_is_retried(moto, home, account) -> None:
    """EC2 throttles a CreateFleet once: it is sent again (botocore's own retry or the
    module's AWSRetry, whichever comes first) and launches once, not twice."""
    throttled: list[str] = []

    def throttle_once(fields: Mapping[str, str]) -> tuple[str, str] | None:
        if fields.get("Action") == "CreateFleet" and not throttled:
            throttled.append("CreateFleet")
            return ("RequestLimitExceeded", "Request limit exceeded.")
        return None

    with FleetProxy(moto.url, refuse=throttle_once) as proxy:
        result = fleet(proxy, home, account, count=2)
        assert not result.get("failed"), result
        assert result["fulfilled"] == 2 and len(matching(account["ec2"])) == 2
        assert proxy.refused == ["CreateFleet"]
        assert proxy.counts()["CreateFleet"] == 2


def test_spot_price_market_tag_and_instance_tags(proxy, home, account) -> None:
    """spot_max_price goes into every spot override (the template asks for no market),
    market_tag into the tags at creation with each fleet's market, and instance_tags to
    each new instance with one CreateTags call each."""
    proxy.capacity["spot"] = 1
    names = [{"Name": f"c1-node00{n}", "segway:node": f"node00{n}"} for n in (1, 2, 3)]
    result = fleet(
        proxy,
        home,
        account,
        count=3,
        spot_max_price="0.05",
        market_tag="segway:market",
        on_demand_fallback=True,
        instance_tags=names,
        subnet_ids=account["subnets"][:1],
    )
    assert not result.get("failed"), result
    spot, on_demand = proxy.fleet_requests()
    assert spot["overrides"] == [
        {"InstanceType": t, "SubnetId": account["subnets"][0], "MaxPrice": "0.05"} for t in TYPES
    ]
    assert on_demand["overrides"] == [
        {"InstanceType": t, "SubnetId": account["subnets"][0]} for t in TYPES
    ]  # no spot price on the on-demand fleet
    assert spot["tags"]["instance"] == {**TAGS, "segway:market": "spot"}
    assert on_demand["tags"]["instance"] == {**TAGS, "segway:market": "on-demand"}
    assert result["plan"]["spot_max_price"] == "0.05"
    assert result["spot_refused"] == ["InsufficientInstanceCapacity"]
    # The instances in the order EC2 listed them (spot first), each with its own name.
    launched = matching(account["ec2"])
    for instance, own in zip(result["instances"], names, strict=True):
        assert instance["tags"] == own
        got = tag_dict(launched[instance["instance_id"]])
        assert got == {**TAGS, "segway:market": instance["lifecycle"], **own}, got
    assert proxy.counts() == {
        "DescribeInstances": 1,
        "DescribeInstanceTypes": 1,
        "CreateFleet": 2,
        "CreateTags": 3,
    }
    # Fewer names than new instances: the rest get none, and no call.
    proxy.clear()
    proxy.capacity["spot"] = None
    more = fleet(proxy, home, account, count=5, instance_tags=names[:1])
    assert not more.get("failed"), more
    assert [i["tags"] for i in more["instances"]] == [names[0], {}]
    assert proxy.counts()["CreateTags"] == 1


def test_a_refused_spot_request_falls_back_whole(moto, home, account) -> None:
    """EC2 may refuse the spot request as a whole (an error answer, not per-pool errors):
    with the fallback that is a shortfall of every pool; without, the module fails with
    EC2's code."""

    def no_spot(fields: Mapping[str, str]) -> tuple[str, str] | None:
        spot = fields.get("TargetCapacitySpecification.DefaultTargetCapacityType") == "spot"
        if fields.get("Action") == "CreateFleet" and spot:
            return ("SpotMaxPriceTooLow", "Your Spot request price of 0.001 is lower")
        return None

    with FleetProxy(moto.url, refuse=no_spot) as proxy:
        failed = fleet(proxy, home, account, count=2, spot_max_price="0.001")
        assert failed["failed"] is True and failed["changed"] is False
        assert failed["error"]["code"] == "SpotMaxPriceTooLow", failed
        assert matching(account["ec2"]) == {}
        result = fleet(proxy, home, account, count=2, on_demand_fallback=True)
        assert not result.get("failed"), result
        assert result["spot_refused"] == ["SpotMaxPriceTooLow"]
        assert {i["lifecycle"] for i in result["instances"]} == {"on-demand"}
        assert result["fulfilled"] == 2 and len(result["fleet_ids"]) == 1
        assert result["errors"][0]["code"] == "SpotMaxPriceTooLow"


def test_documentation_matches_the_argument_spec() -> None:
    doc = yaml.safe_load(ec2_instant_fleet.DOCUMENTATION)["options"]
    assert mismatches(doc, ec2_instant_fleet.ARGUMENT_SPEC) == []
