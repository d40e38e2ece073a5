# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cluster's launch templates in few EC2 calls (segway.cluster.ec2_cluster_templates).

The cluster's templates are read once, by its tag (``segway:cluster``), never by name
alone. A wanted template the cluster does not have is created (CreateLaunchTemplate)
and then tagged (CreateTags: moto_server copies tags given at creation into the first
version's data, which then never matches); EC2 refuses a second template of a name, so a
template of that name that is not the cluster's is never adopted: the run stops. A
template the cluster has gets a new default version only when its default version's data
differ from the wanted data (DescribeLaunchTemplateVersions, then
CreateLaunchTemplateVersion and ModifyLaunchTemplate), and the missing tags (read with one
DescribeTags for all of them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.segway.cluster.plugins.module_utils.ec2_tags import tag_list

CLUSTER_TAG = "segway:cluster"
EXISTS = "InvalidLaunchTemplateName.AlreadyExistsException"
# IMDSv2 only (session tokens required), one hop: every node of the cluster.
METADATA_OPTIONS = {
    "HttpEndpoint": "enabled",
    "HttpTokens": "required",
    "HttpPutResponseHopLimit": 1,
    "HttpProtocolIpv6": "disabled",
    "InstanceMetadataTags": "disabled",
}


class TemplateError(Exception):
    """A template launch may not create or change (one of another owner's name)."""


def profile_spec(profile: str) -> dict[str, str]:
    """IamInstanceProfile of a template: by ARN when given one, else by name."""
    return {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}


def template_data(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The LaunchTemplateData of one node shape: image, type, key, IMDSv2 only, an
    encrypted root volume deleted with the instance, and when given an instance profile,
    a placement group and a network interface (security groups, public address, no
    subnet: the caller's launch gives that)."""
    data: dict[str, Any] = {
        "ImageId": spec["image_id"],
        "InstanceType": spec["instance_type"],
        "KeyName": spec["key_name"],
        "MetadataOptions": dict(METADATA_OPTIONS),
        "BlockDeviceMappings": [
            {
                "DeviceName": spec["root_device_name"],
                "Ebs": {
                    "VolumeSize": int(spec["root_volume_size"]),
                    "VolumeType": spec["root_volume_type"],
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
    }
    if spec.get("iam_instance_profile"):
        data["IamInstanceProfile"] = profile_spec(spec["iam_instance_profile"])
    if spec.get("placement_group"):
        data["Placement"] = {"GroupName": spec["placement_group"]}
    if spec.get("security_groups"):
        data["NetworkInterfaces"] = [
            {
                "DeviceIndex": 0,
                "AssociatePublicIpAddress": bool(spec.get("public_ip")),
                "Groups": list(spec["security_groups"]),
                "DeleteOnTermination": True,
            }
        ]
    return data


def same_data(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a version's data are the wanted data: the same keys (tags given at
    creation, which moto_server keeps in the data, aside) with the same values."""
    kept = {k: v for k, v in current.items() if k != "TagSpecifications"}
    return canonical(kept) == canonical(wanted)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def missing_tags(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The wanted tags the resource lacks or holds with another value (none is removed)."""
    return {k: str(v) for k, v in wanted.items() if current.get(k) != str(v)}


def fetch_cluster_templates(ec2: Any, cluster: str) -> dict[str, dict[str, Any]]:
    """The cluster's launch templates by name (one DescribeLaunchTemplates, by its tag):
    {id, default_version}."""
    found: dict[str, dict[str, Any]] = {}
    for page in ec2.get_paginator("describe_launch_templates").paginate(
        Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]
    ):
        for tmpl in page["LaunchTemplates"]:
            found[tmpl["LaunchTemplateName"]] = {
                "id": tmpl["LaunchTemplateId"],
                "default_version": tmpl.get("DefaultVersionNumber"),
            }
    return found


def fetch_tags(ec2: Any, resource_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """The tags of resources by id (one DescribeTags). DescribeLaunchTemplates' Tags may
    miss tags added after creation (moto_server shows only those given at creation)."""
    tags: dict[str, dict[str, str]] = {r: {} for r in resource_ids}
    if not resource_ids:
        return tags
    for page in ec2.get_paginator("describe_tags").paginate(
        Filters=[{"Name": "resource-id", "Values": list(resource_ids)}]
    ):
        for tag in page["Tags"]:
            tags.setdefault(tag["ResourceId"], {})[tag["Key"]] = tag["Value"]
    return tags


def error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def ensure_templates(
    ec2: Any,
    cluster: str,
    specs: Sequence[Mapping[str, Any]],
    tags: Mapping[str, Any],
    *,
    check_mode: bool = False,
    known: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Bring the cluster's templates named in specs (each {name, description, ...} of
    template_data) to their wanted data and tags. known: the cluster's templates (name ->
    id) as the caller read them by the cluster's tag, not read again when given. Returns
    {changed, templates (name -> id; '' for one check mode would create), created,
    updated, tagged, diff}."""
    wanted_tags = {CLUSTER_TAG: cluster, **{k: str(v) for k, v in tags.items()}}
    existing = (
        fetch_cluster_templates(ec2, cluster)
        if known is None
        else {name: {"id": template_id} for name, template_id in known.items()}
    )
    kept_ids = [existing[s["name"]]["id"] for s in specs if s["name"] in existing]
    kept_tags = fetch_tags(ec2, kept_ids)
    result: dict[str, Any] = {
        "templates": {},
        "created": [],
        "updated": [],
        "tagged": [],
        "diff": {"before": {}, "after": {}},
    }
    for spec in specs:
        name = spec["name"]
        data = template_data(spec)
        found = existing.get(name)
        if found is None:
            result["created"].append(name)
            result["diff"]["before"][name] = None
            result["diff"]["after"][name] = {"data": data, "tags": wanted_tags}
            result["templates"][name] = "" if check_mode else create(ec2, spec, data, wanted_tags)
            continue
        result["templates"][name] = found["id"]
        current = ec2.describe_launch_template_versions(
            LaunchTemplateId=found["id"], Versions=["$Default"]
        )["LaunchTemplateVersions"]
        current_data = current[0].get("LaunchTemplateData", {}) if current else {}
        found_tags = kept_tags.get(found["id"], {})
        absent = missing_tags(found_tags, wanted_tags)
        if same_data(current_data, data) and not absent:
            continue
        result["diff"]["before"][name] = {"data": current_data, "tags": found_tags}
        result["diff"]["after"][name] = {"data": data, "tags": {**found_tags, **absent}}
        if not same_data(current_data, data):
            result["updated"].append(name)
            if not check_mode:
                version = ec2.create_launch_template_version(
                    LaunchTemplateId=found["id"],
                    VersionDescription=spec.get("description", ""),
                    LaunchTemplateData=data,
                )["LaunchTemplateVersion"]["VersionNumber"]
                ec2.modify_launch_template(
                    LaunchTemplateId=found["id"], DefaultVersion=str(version)
                )
        if absent:
            result["tagged"].append(name)
            if not check_mode:
                ec2.create_tags(Resources=[found["id"]], Tags=tag_list(absent))
    result["changed"] = bool(result["created"] or result["updated"] or result["tagged"])
    return result


def create(
    ec2: Any, spec: Mapping[str, Any], data: Mapping[str, Any], tags: Mapping[str, str]
) -> str:
    """CreateLaunchTemplate, then CreateTags; TemplateError when EC2 already holds a
    template of the name (not the cluster's: its templates were read by their tag)."""
    try:
        made = ec2.create_launch_template(
            LaunchTemplateName=spec["name"],
            VersionDescription=spec.get("description", ""),
            LaunchTemplateData=dict(data),
        )
    except Exception as exc:
        if error_code(exc) == EXISTS:
            raise TemplateError(
                f"a launch template named {spec['name']} exists and is not tagged "
                f"{CLUSTER_TAG}={tags[CLUSTER_TAG]}: launch never takes over a template by "
                "its name. Delete or rename it, or choose another cluster_name. Nothing of "
                "it was changed."
            ) from exc
        raise
    template_id = made["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_tags(Resources=[template_id], Tags=tag_list(tags))
    return template_id
