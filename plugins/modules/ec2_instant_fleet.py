#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ec2_instant_fleet: launch the missing compute nodes at once."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_instant_fleet
short_description: Launch the missing instances of a set with one EC2 instant fleet
version_added: 0.1.0
description:
  - Makes O(count) instances tagged with O(match_tags) exist, launching only the missing
    ones with one EC2 C(CreateFleet) call of type C(instant) from one launch template,
    over every instance type in O(instance_types) (times every subnet in O(subnet_ids)).
  - Only instances in the states C(pending) and C(running) count. Instances that are
    C(stopping), C(stopped), C(shutting-down) or C(terminated) do not, so a set whose
    instances were stopped is filled up with new ones.
  - It never terminates or stops anything. When more instances match than O(count), it
    launches nothing and reports how many there are (scaling down is done elsewhere).
  - Every new instance, its volumes and the fleet request get O(tags) at creation
    (C(TagSpecifications) of resource types C(instance), C(volume) and C(fleet), which
    EC2 accepts for instant fleets); no tagging call follows.
  - EC2 may launch fewer instances than asked (no capacity in a pool, a spot price, a
    quota); it then reports an error per pool. If nothing was launched the module fails,
    listing them; if some were, it succeeds with a warning and the errors in RV(errors),
    unless O(fail_on_partial=true). With O(on_demand_fallback=true), a spot shortfall is
    asked once more as on-demand.
  - API calls do not grow with O(count) - one C(DescribeInstances) (paginated), one
    C(DescribeInstanceTypes), one C(CreateFleet), and a second C(CreateFleet) for the
    on-demand fallback - except with O(instance_tags), which costs one C(CreateTags) per new
    instance given tags of its own. Throttled calls are retried with jittered back-off.
  - The launch template must not ask for spot itself (C(InstanceMarketOptions)), as EC2
    refuses such a template in a fleet. The market comes from O(market), the spot price
    limit from O(spot_max_price).
options:
  launch_template:
    description: The launch template every instance is launched from.
    type: dict
    required: true
    suboptions:
      id:
        description: The template's id. Give O(launch_template.id) or O(launch_template.name).
        type: str
      name:
        description: The template's name.
        type: str
      version:
        description:
          - The template version, a number, V($Default) or V($Latest).
          - V($Default) (the default) launches the version marked default, so creating a
            newer version does not change what is launched until it is made the default.
        type: str
        default: $Default
  instance_types:
    description:
      - The instance types to choose from (the cluster's compute types), each an override
        of the launch template's type. At least one; no type twice.
      - They are checked against EC2 (C(DescribeInstanceTypes)) before anything is launched.
      - Their order is the priority for the V(prioritized) and
        V(capacity-optimized-prioritized) strategies, first highest.
    type: list
    elements: str
    required: true
  subnet_ids:
    description:
      - Subnets to launch in; one override per instance type and subnet. Empty, the
        launch template's network settings apply.
    type: list
    elements: str
    default: []
  count:
    description:
      - How many instances matching O(match_tags) (pending or running) should exist in
        total. Only the difference to those that exist is launched.
    type: int
    required: true
  match_tags:
    description:
      - The tags that identify the set's instances (for example C(segway:cluster) and
        C(segway:role)). Must not be empty, and must be part of O(tags) with the same
        values, so every instance launched here is counted on the next run.
    type: dict
    required: true
  tags:
    description: Tags every new instance, its volumes and the fleet request get at creation.
    type: dict
    required: true
  market:
    description: Launch V(spot) or V(on-demand) instances.
    type: str
    choices: [spot, on-demand]
    default: spot
  spot_allocation_strategy:
    description: How EC2 picks among the spot pools (C(SpotOptions.AllocationStrategy)).
    type: str
    choices:
      - price-capacity-optimized
      - capacity-optimized
      - capacity-optimized-prioritized
      - lowest-price
      - diversified
    default: price-capacity-optimized
  on_demand_allocation_strategy:
    description:
      - How EC2 picks among on-demand pools (C(OnDemandOptions.AllocationStrategy)), used
        when O(market=on-demand) and by the on-demand fallback.
      - V(prioritized) follows the order of O(instance_types).
    type: str
    choices: [lowest-price, prioritized]
    default: lowest-price
  on_demand_fallback:
    description:
      - With O(market=spot), when EC2 launched fewer spot instances than asked, ask a
        second instant fleet for the remainder as on-demand. RV(instances) tells which
        instance came from which market.
    type: bool
    default: false
  market_tag:
    description:
      - The name of a tag every new instance gets at creation with the market of the fleet
        that launched it (V(spot), or V(on-demand) for the on-demand fallback's).
        Empty, no such tag.
    type: str
    default: ''
  spot_max_price:
    description:
      - The most to pay per instance hour for spot, in USD (each override's C(MaxPrice)).
        Empty, up to the on-demand price (EC2's default). Not applied to on-demand fleets.
    type: str
    default: ''
  instance_tags:
    description:
      - Tags for each new instance of its own, in launch order - the first new instance
        (as EC2 listed it) gets the first dict, and so on; new instances beyond the list
        get none. Each is one C(CreateTags) call (EC2's C(TagSpecifications) give every
        instance of a fleet the same tags), made right after the launch.
      - For example a node name and number, which differ from instance to instance.
      - The calls grow with the number of new instances. Where that matters, keep what
        differs elsewhere; roles/ec2_cluster does not use this option, and records its
        compute nodes' names as tags of the cluster's master instead (one call whatever
        the count).
    type: list
    elements: dict
    default: []
  fail_on_partial:
    description:
      - Fail when fewer instances were launched than asked (after the fallback), not only
        when none were. The instances that were launched are kept and returned.
    type: bool
    default: false
  check_types:
    description:
      - Check with DescribeInstanceTypes that EC2 knows every one of O(instance_types)
        before launching. V(false) when the caller has checked them already (launch.yml
        requires every type to be offered in the cluster's zone before anything is
        created).
    type: bool
    default: true
notes:
  - Instances are found by tags only; EC2 may take a few seconds to list an instance it
    has just launched, so two runs at the same moment could both launch the missing
    ones. The launch of a cluster holds the launch lock (M(segway.cluster.ec2_cluster_lock)).
  - Check mode does not call C(CreateFleet), so it does not find out whether the launch
    template exists or whether EC2 has the capacity.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Reports how many instances it would launch, of which types and market.
  diff_mode:
    support: full
    details: Shows the number of matching instances before and after.
  platform:
    platforms: all
    details: It only calls the EC2 API, usually from the controller (C(localhost)).
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Make 16 compute nodes exist, on spot, on-demand for what spot cannot fill
  segway.cluster.ec2_instant_fleet:
    launch_template:
      name: segway-mycluster-compute
    instance_types: [m7i.large, m6i.large, m7a.large]
    subnet_ids: [subnet-0123456789abcdef0, subnet-0fedcba9876543210]
    count: 16
    match_tags:
      "segway:cluster": mycluster
      "segway:role": compute
    tags:
      "segway:cluster": mycluster
      "segway:role": compute
      "segway:owner": arn:aws:iam::123456789012:user/alice
    market_tag: "segway:market"
    spot_max_price: "0.12"
    on_demand_fallback: true
    # The two first new instances get a name each (one CreateTags call each: the calls
    # grow with the count).
    instance_tags:
      - {Name: mycluster-node001, "segway:node": node001}
      - {Name: mycluster-node002, "segway:node": node002}
  register: fleet

- name: On-demand only, the first type preferred
  segway.cluster.ec2_instant_fleet:
    launch_template: {id: lt-0123456789abcdef0, version: "3"}
    instance_types: [c7i.xlarge, c6i.xlarge]
    count: 2
    market: on-demand
    on_demand_allocation_strategy: prioritized
    match_tags: {"segway:cluster": mycluster, "segway:role": compute}
    tags: {"segway:cluster": mycluster, "segway:role": compute}
"""

RETURN = r"""
instance_ids:
  description: The instances launched by this run (empty in check mode).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
instances:
  description: Each instance launched by this run.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id: {description: Its id., type: str, sample: i-0123456789abcdef0}
    instance_type: {description: Its type., type: str, sample: m7i.large}
    subnet_id: {description: Its subnet (null when no O(subnet_ids) were given)., type: str}
    lifecycle: {description: V(spot) or V(on-demand)., type: str, sample: spot}
    availability_zone: {description: Its zone when EC2 reported it (else null)., type: str}
    tags:
      description: The tags of its own from O(instance_tags) it was given ({} if none).
      type: dict
existing_ids:
  description: The matching pending or running instances found before launching.
  returned: always
  type: list
  elements: str
requested:
  description: How many instances were asked for (0 when enough exist).
  returned: always
  type: int
  sample: 4
fulfilled:
  description: How many were launched (in check mode, how many would be asked for).
  returned: always
  type: int
  sample: 4
short_by:
  description: RV(requested) less RV(fulfilled).
  returned: always
  type: int
  sample: 0
excess:
  description: How many more instances match than O(count) (never terminated here).
  returned: always
  type: int
  sample: 0
errors:
  description: The per-pool errors EC2 reported, for every fleet of this run.
  returned: always
  type: list
  elements: dict
  contains:
    instance_type: {description: The pool's instance type., type: str}
    subnet_id: {description: The pool's subnet., type: str}
    lifecycle: {description: V(spot) or V(on-demand)., type: str}
    code: {description: EC2's error code., type: str, sample: InsufficientInstanceCapacity}
    message: {description: EC2's message., type: str}
spot_refused:
  description:
    - The error codes with which EC2 refused spot capacity (per pool, or the whole spot
      request), each once; empty when spot was not refused.
  returned: always
  type: list
  elements: str
  sample: [InsufficientInstanceCapacity]
fleet_ids:
  description: The ids of the instant fleets created (one, two with the fallback).
  returned: always
  type: list
  elements: str
plan:
  description: What was (or in check mode would be) asked of EC2.
  returned: always
  type: dict
  contains:
    count: {description: Instances to launch., type: int}
    market: {description: The first fleet's market., type: str}
    instance_types: {description: The types offered., type: list, elements: str}
    subnet_ids: {description: The subnets offered., type: list, elements: str}
    allocation_strategy: {description: The first fleet's allocation strategy., type: str}
    on_demand_fallback: {description: Whether a shortfall is asked as on-demand., type: bool}
    spot_max_price: {description: The spot price limit (empty for none)., type: str}
"""

import contextlib  # noqa: E402
import re  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.botocore import (  # noqa: E402
    is_boto3_error_code,
)
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (  # noqa: E402
    ansible_dict_to_boto3_tag_list,
    ansible_dict_to_tag_filter_dict,
)

COUNTED_STATES = ["pending", "running"]
PRIORITIZED = ("prioritized", "capacity-optimized-prioritized")

ARGUMENT_SPEC: dict[str, Any] = {
    "launch_template": {
        "type": "dict",
        "required": True,
        "options": {
            "id": {"type": "str"},
            "name": {"type": "str"},
            "version": {"type": "str", "default": "$Default"},
        },
        "mutually_exclusive": [["id", "name"]],
        "required_one_of": [["id", "name"]],
    },
    "instance_types": {"type": "list", "elements": "str", "required": True},
    "subnet_ids": {"type": "list", "elements": "str", "default": []},
    "count": {"type": "int", "required": True},
    "match_tags": {"type": "dict", "required": True},
    "tags": {"type": "dict", "required": True},
    "market": {"type": "str", "choices": ["spot", "on-demand"], "default": "spot"},
    "spot_allocation_strategy": {
        "type": "str",
        "choices": [
            "price-capacity-optimized",
            "capacity-optimized",
            "capacity-optimized-prioritized",
            "lowest-price",
            "diversified",
        ],
        "default": "price-capacity-optimized",
    },
    "on_demand_allocation_strategy": {
        "type": "str",
        "choices": ["lowest-price", "prioritized"],
        "default": "lowest-price",
    },
    "on_demand_fallback": {"type": "bool", "default": False},
    "market_tag": {"type": "str", "default": ""},
    "spot_max_price": {"type": "str", "default": ""},
    "instance_tags": {"type": "list", "elements": "dict", "default": []},
    "fail_on_partial": {"type": "bool", "default": False},
    "check_types": {"type": "bool", "default": True},
}

# Whole-request answers of EC2 that mean "no spot capacity for this request" (per-pool
# errors come in the answer's Errors instead): with on_demand_fallback they are a
# shortfall like any other, asked again as on-demand.
SPOT_REFUSALS = (
    "InsufficientInstanceCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "InsufficientCapacity",
)
PRICE_RE = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


def duplicates(values: list[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def check_inputs(params: dict[str, Any]) -> str | None:
    """The first problem with the options, as a message naming the option; None if none."""
    types, subnets = params["instance_types"], params["subnet_ids"]
    match, tags = params["match_tags"], params["tags"]
    price = params["spot_max_price"]
    wrong = {k: v for k, v in match.items() if k not in tags or str(tags[k]) != str(v)}
    checks = [
        (
            not types or any(not t for t in types),
            f"instance_types: give at least one instance type (non-empty names), got {types}",
        ),
        (
            duplicates(types),
            f"instance_types: {', '.join(duplicates(types))} given more than once in {types}",
        ),
        (
            duplicates(subnets),
            f"subnet_ids: {', '.join(duplicates(subnets))} given more than once in {subnets}",
        ),
        (params["count"] < 0, f"count: must be 0 or more, got {params['count']}"),
        (
            bool(price) and (not PRICE_RE.match(price) or float(price) <= 0),
            f"spot_max_price: must be a positive hourly price in USD such as 0.12, got {price!r}",
        ),
        (
            not match,
            "match_tags: must name at least one tag (without, every instance of the account "
            "would be counted)",
        ),
        (
            wrong,
            "match_tags: "
            + ", ".join(f"{k}={v}" for k, v in sorted(wrong.items()))
            + f" not in tags (tags are {tags}); every match tag must be among the tags with "
            "the same value, or the instances launched here would not be counted on the next "
            "run",
        ),
    ]
    return next((message for failed, message in checks if failed), None)


class Fleet:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
        self.match = {k: str(v) for k, v in self.params["match_tags"].items()}
        self.tags = {k: str(v) for k, v in self.params["tags"].items()}
        self.result: dict[str, Any] = {}
        self.fallback = bool(self.params["on_demand_fallback"]) and self.params["market"] == "spot"

    # ------------------------------------------------------------------ reads

    def existing(self) -> list[str]:
        """Ids of the pending or running instances carrying every match tag."""
        filters = [
            {"Name": name, "Values": [value]}
            for name, value in sorted(ansible_dict_to_tag_filter_dict(self.match).items())
        ]
        filters.append({"Name": "instance-state-name", "Values": COUNTED_STATES})
        try:
            found = describe_instances(self.ec2, Filters=filters)
        except (BotoCoreError, ClientError) as exc:
            self.module.fail_json_aws(exc, msg=f"cannot list the instances tagged {self.match}")
        return sorted(
            i["InstanceId"]
            for r in found["Reservations"]
            for i in r["Instances"]
            if i.get("State", {}).get("Name") in COUNTED_STATES
        )

    def check_types(self) -> None:
        types = self.params["instance_types"]
        try:
            found = self.ec2.describe_instance_types(InstanceTypes=types, aws_retry=True)
        except is_boto3_error_code("InvalidInstanceType") as exc:
            message = exc.response.get("Error", {}).get("Message", "")
            self.module.fail_json(
                msg=(
                    f"instance_types: EC2 does not know all of {types} in region "
                    f"{self.module.region}: {message}. Nothing was launched."
                )
            )
        except (BotoCoreError, ClientError) as exc:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(exc, msg=f"cannot check the instance types {types}")
        known = {t["InstanceType"] for t in found.get("InstanceTypes", [])}
        unknown = [t for t in types if t not in known]
        if unknown:
            self.module.fail_json(
                msg=(
                    f"instance_types: {', '.join(unknown)} unknown to EC2 in region "
                    f"{self.module.region} (given {types}). Nothing was launched."
                )
            )

    # ------------------------------------------------------------------ the launch

    def template(self) -> dict[str, str]:
        given = self.params["launch_template"]
        spec = {"Version": given["version"]}
        if given.get("id"):
            spec["LaunchTemplateId"] = given["id"]
        else:
            spec["LaunchTemplateName"] = given["name"]
        return spec

    def strategy(self, market: str) -> str:
        if market == "spot":
            return self.params["spot_allocation_strategy"]
        return self.params["on_demand_allocation_strategy"]

    def request(self, market: str, count: int) -> dict[str, Any]:
        """The CreateFleet request of an instant fleet of count instances on market."""
        strategy = self.strategy(market)
        overrides = []
        for priority, instance_type in enumerate(self.params["instance_types"]):
            for subnet in self.params["subnet_ids"] or [None]:
                override: dict[str, Any] = {"InstanceType": instance_type}
                if subnet:
                    override["SubnetId"] = subnet
                if strategy in PRIORITIZED:
                    override["Priority"] = float(priority)
                if market == "spot" and self.params["spot_max_price"]:
                    override["MaxPrice"] = self.params["spot_max_price"]
                overrides.append(override)
        tags = dict(self.tags)
        if self.params["market_tag"]:
            tags[self.params["market_tag"]] = market
        options_key = "SpotOptions" if market == "spot" else "OnDemandOptions"
        return {
            "Type": "instant",
            "ClientToken": str(uuid.uuid4()),
            "LaunchTemplateConfigs": [
                {"LaunchTemplateSpecification": self.template(), "Overrides": overrides}
            ],
            "TargetCapacitySpecification": {
                "TotalTargetCapacity": count,
                "DefaultTargetCapacityType": market,
            },
            options_key: {"AllocationStrategy": strategy},
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": ansible_dict_to_boto3_tag_list(tags)}
                for kind in ("instance", "volume", "fleet")
            ],
        }

    def launch(self, market: str, count: int) -> dict[str, Any]:
        """One instant fleet: its id, the instances it launched, its per-pool errors."""
        try:
            answer = self.ec2.create_fleet(**self.request(market, count), aws_retry=True)
        except (BotoCoreError, ClientError) as exc:
            error = exc.response.get("Error", {}) if isinstance(exc, ClientError) else {}
            code = error.get("Code", "")
            if market == "spot" and self.fallback and code in SPOT_REFUSALS:
                # No spot at all for this request: a shortfall of every pool, asked again
                # as on-demand.
                return {
                    "fleet_id": None,
                    "instances": [],
                    "errors": [
                        {
                            "instance_type": None,
                            "subnet_id": None,
                            "lifecycle": "spot",
                            "code": code,
                            "message": error.get("Message", ""),
                        }
                    ],
                }
            launched = self.result["instance_ids"]  # by the first fleet, when this is the second
            self.result.update(changed=bool(launched), fulfilled=len(launched))
            kept = f"; the {len(launched)} launched before are kept" if launched else ""
            self.module.fail_json_aws(
                exc,
                msg=(
                    f"cannot launch {count} {market} instances of {self.params['instance_types']} "
                    f"from launch template {self.template()}{kept}"
                ),
                **self.result,
            )
        instances = []
        for group in answer.get("Instances") or []:
            override = (group.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}
            for instance_id in group.get("InstanceIds") or []:
                instances.append(
                    {
                        "instance_id": instance_id,
                        "instance_type": group.get("InstanceType") or override.get("InstanceType"),
                        "subnet_id": override.get("SubnetId"),
                        "lifecycle": group.get("Lifecycle") or market,
                        "availability_zone": override.get("AvailabilityZone"),
                        "tags": {},
                    }
                )
        errors = []
        for error in answer.get("Errors") or []:
            override = (error.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}
            errors.append(
                {
                    "instance_type": override.get("InstanceType"),
                    "subnet_id": override.get("SubnetId"),
                    "lifecycle": error.get("Lifecycle") or market,
                    "code": error.get("ErrorCode", ""),
                    "message": error.get("ErrorMessage", ""),
                }
            )
        return {"fleet_id": answer.get("FleetId"), "instances": instances, "errors": errors}

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        problem = check_inputs(self.params)
        if problem:
            self.module.fail_json(msg=problem)
        count = self.params["count"]
        market = self.params["market"]
        fallback = self.fallback
        existing = self.existing()
        missing = max(count - len(existing), 0)
        self.result = {
            "changed": False,
            "instance_ids": [],
            "instances": [],
            "existing_ids": existing,
            "requested": missing,
            "fulfilled": 0,
            "short_by": 0,
            "excess": max(len(existing) - count, 0),
            "errors": [],
            "spot_refused": [],
            "fleet_ids": [],
            "plan": {
                "count": missing,
                "market": market,
                "instance_types": self.params["instance_types"],
                "subnet_ids": self.params["subnet_ids"],
                "allocation_strategy": self.strategy(market),
                "on_demand_fallback": fallback,
                "spot_max_price": self.params["spot_max_price"] if market == "spot" else "",
            },
        }
        if missing == 0:
            if self.result["excess"]:
                self.module.warn(
                    f"{len(existing)} instances tagged {self.match} are pending or running, "
                    f"{self.result['excess']} more than count={count}; none is terminated here"
                )
            self.exit(len(existing), len(existing))
        if self.params["check_types"]:
            self.check_types()
        if self.module.check_mode:
            self.result.update(changed=True, fulfilled=missing)
            self.exit(len(existing), count)
        self.add(self.launch(market, missing))
        short = missing - len(self.result["instances"])
        if short and fallback:
            self.add(self.launch("on-demand", short))
        self.tag_each()
        self.finish(len(existing), missing)

    def tag_each(self) -> None:
        """The tags of its own of each new instance (instance_tags), one CreateTags each."""
        for instance, tags in zip(
            self.result["instances"], self.params["instance_tags"], strict=False
        ):
            own = {str(k): str(v) for k, v in tags.items()}
            instance["tags"] = own
            if not own:
                continue
            try:
                self.ec2.create_tags(
                    Resources=[instance["instance_id"]],
                    Tags=ansible_dict_to_boto3_tag_list(own),
                    aws_retry=True,
                )
            except (BotoCoreError, ClientError) as exc:
                self.result.update(changed=True, fulfilled=len(self.result["instances"]))
                self.module.fail_json_aws(
                    exc,
                    msg=(
                        f"launched {len(self.result['instances'])} instances "
                        f"({', '.join(self.result['instance_ids'])}, kept), but cannot tag "
                        f"{instance['instance_id']} with {own}"
                    ),
                    **self.result,
                )

    def add(self, fleet: dict[str, Any]) -> None:
        if fleet["fleet_id"]:
            self.result["fleet_ids"].append(fleet["fleet_id"])
        self.result["instances"] += fleet["instances"]
        self.result["instance_ids"] += [i["instance_id"] for i in fleet["instances"]]
        self.result["errors"] += fleet["errors"]
        for error in fleet["errors"]:
            if error["lifecycle"] == "spot" and error["code"] not in self.result["spot_refused"]:
                self.result["spot_refused"].append(error["code"])

    def finish(self, before: int, missing: int) -> None:
        fulfilled = len(self.result["instances"])
        short = max(missing - fulfilled, 0)
        self.result.update(changed=fulfilled > 0, fulfilled=fulfilled, short_by=short)
        if not short:
            self.exit(before, before + fulfilled)
        by_market = Counter(i["lifecycle"] for i in self.result["instances"])
        launched = ", ".join(f"{n} {m}" for m, n in sorted(by_market.items())) or "none"
        errors = "; ".join(
            f"{e['instance_type']} in {e['subnet_id'] or 'the template subnet'} "
            f"({e['lifecycle']}): {e['code']} {e['message']}".rstrip()
            for e in self.result["errors"]
        )
        errors = errors or "EC2 reported no per-pool errors"
        what = (
            f"EC2 launched {fulfilled} of the {missing} missing instances tagged {self.match} "
            f"({launched}; short by {short}). Per-pool errors: {errors}"
        )
        if fulfilled == 0 or self.params["fail_on_partial"]:
            kept = (
                f" The {fulfilled} launched ({', '.join(self.result['instance_ids'])}) are kept."
                if fulfilled
                else " Nothing was launched."
            )
            self.module.fail_json(
                msg=what + "." + kept,
                diff=diff(before, before + fulfilled),
                **self.result,
            )
        self.module.warn(what)
        self.exit(before, before + fulfilled)

    def exit(self, before: int, after: int) -> None:
        self.module.exit_json(diff=diff(before, after), **self.result)


def diff(before: int, after: int) -> dict[str, dict[str, int]]:
    return {"before": {"instances": before}, "after": {"instances": after}}


@AWSRetry.jittered_backoff()
def describe_instances(client: Any, **params: Any) -> dict[str, Any]:
    paginator = client.get_paginator("describe_instances")
    return paginator.paginate(**params).build_full_result()


def main() -> None:
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    Fleet(module).run()


if __name__ == "__main__":
    main()
