# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One instance of a cluster from its launch template (segway.cluster.ec2_cluster_instance).

Three calls where amazon.aws.ec2_instance made twelve: DescribeInstances (does an instance
with the match tags exist, pending to stopped? then nothing is launched), RunInstances
with everything given at creation (tags on the instance and its volumes, the network
interface, IMDSv2, the instance profile), and DescribeInstances until it runs (one call
when it runs at once). botocore fills RunInstances' ClientToken, so its own retries never
launch a second instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible_collections.segway.cluster.plugins.module_utils.ec2_cluster import tag_dict
from ansible_collections.segway.cluster.plugins.module_utils.ec2_tags import tag_list

# The states in which an instance exists for the match (not shutting down or terminated).
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
# IMDSv2 only (session tokens required), whatever the template says.
METADATA_OPTIONS = {"HttpEndpoint": "enabled", "HttpTokens": "required"}
NOT_FOUND = "InvalidInstanceID.NotFound"


class LaunchError(Exception):
    """The instance did not come up as asked."""


def plain(inst: Mapping[str, Any]) -> dict[str, Any]:
    """What the caller needs of an instance."""
    return {
        "instance_id": inst["InstanceId"],
        "state": inst.get("State", {}).get("Name", ""),
        "instance_type": inst.get("InstanceType", ""),
        "zone": inst.get("Placement", {}).get("AvailabilityZone", ""),
        "subnet_id": inst.get("SubnetId", ""),
        "private_ip_address": inst.get("PrivateIpAddress", ""),
        "public_ip_address": inst.get("PublicIpAddress", ""),
        "launch_time": str(inst.get("LaunchTime", "")),
        "tags": tag_dict(inst.get("Tags")),
        "metadata_http_tokens": inst.get("MetadataOptions", {}).get("HttpTokens", ""),
    }


def find_matching(ec2: Any, match_tags: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The live instances carrying every tag of match_tags, oldest first."""
    filters = [{"Name": f"tag:{k}", "Values": [str(v)]} for k, v in sorted(match_tags.items())]
    filters.append({"Name": "instance-state-name", "Values": LIVE_STATES})
    found = [
        i
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters)
        for r in page["Reservations"]
        for i in r["Instances"]
    ]
    return sorted(found, key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"]))


def run_request(
    template: Mapping[str, str],
    *,
    subnet_id: str,
    security_groups: Sequence[str],
    public_ip: bool,
    tags: Mapping[str, Any],
    iam_instance_profile: str = "",
) -> dict[str, Any]:
    """RunInstances' arguments: one instance from the template's default version (or the
    version given), in subnet_id with the security groups, tagged (instance and volumes)
    and with IMDSv2 required at creation."""
    spec = {"Version": template.get("version") or "$Default"}
    if template.get("id"):
        spec["LaunchTemplateId"] = template["id"]
    else:
        spec["LaunchTemplateName"] = template["name"]
    request: dict[str, Any] = {
        "LaunchTemplate": spec,
        "MinCount": 1,
        "MaxCount": 1,
        "NetworkInterfaces": [
            {
                "DeviceIndex": 0,
                "SubnetId": subnet_id,
                "Groups": list(security_groups),
                "AssociatePublicIpAddress": bool(public_ip),
                "DeleteOnTermination": True,
            }
        ],
        "MetadataOptions": dict(METADATA_OPTIONS),
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tag_list(tags)},
            {"ResourceType": "volume", "Tags": tag_list(tags)},
        ],
    }
    if iam_instance_profile:
        key = "Arn" if iam_instance_profile.startswith("arn:") else "Name"
        request["IamInstanceProfile"] = {key: iam_instance_profile}
    return request


def wait_running(
    ec2: Any,
    instance_id: str,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    delay: float = 5,
) -> dict[str, Any]:
    """DescribeInstances of instance_id until it runs; LaunchError when it stops or
    terminates, or is not running within timeout seconds. An id EC2 does not know yet
    counts as pending."""
    deadline = clock() + timeout
    while True:
        try:
            reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except Exception as exc:
            # EC2 may not know a new instance's id yet (eventual consistency).
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != NOT_FOUND:
                raise
            reservations = []
        found = [i for r in reservations for i in r["Instances"]]
        state = found[0].get("State", {}).get("Name", "") if found else ""
        if state == "running":
            return found[0]
        if state not in ("pending", ""):
            raise LaunchError(f"instance {instance_id} is {state}, not running")
        if clock() > deadline:
            raise LaunchError(f"instance {instance_id} is not running within {timeout:g} s")
        sleep(delay)


def ensure_instance(
    ec2: Any,
    params: Mapping[str, Any],
    *,
    check_mode: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """An instance with params' match_tags exists and runs (when params' wait): launch one
    only when none does. Returns {changed, instance_ids, instance, diff}."""
    match_tags = params["match_tags"]
    tags = {**params["tags"]}
    wrong = {k: v for k, v in match_tags.items() if str(tags.get(k)) != str(v)}
    if not match_tags or wrong:
        raise LaunchError(
            f"match_tags must be given and be part of tags with the same values: {wrong}"
        )
    existing = find_matching(ec2, match_tags)
    if existing:
        first = plain(existing[0])
        return {
            "changed": False,
            "instance_ids": [first["instance_id"]],
            "instance": first,
        }
    request = run_request(
        params["launch_template"],
        subnet_id=params["subnet_id"],
        security_groups=params["security_groups"],
        public_ip=params["public_ip"],
        tags=tags,
        iam_instance_profile=params.get("iam_instance_profile") or "",
    )
    diff = {"before": {}, "after": {"launch": request}}
    if check_mode:
        return {"changed": True, "instance_ids": [], "instance": {}, "diff": diff}
    made = ec2.run_instances(**request)["Instances"][0]
    if params.get("wait", True):
        made = wait_running(ec2, made["InstanceId"], params.get("wait_timeout", 600), sleep=sleep)
    launched = plain(made)
    return {
        "changed": True,
        "instance_ids": [launched["instance_id"]],
        "instance": launched,
        "diff": diff,
    }
