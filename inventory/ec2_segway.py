#!/usr/bin/env python3
"""Dynamic inventory of segway.cluster clusters on EC2.

    inventory/ec2_segway.py --list              # every running cluster (or the chosen one)
    inventory/ec2_segway.py --host master       # one host's variables
    ansible-playbook -i inventory/ec2_segway.py playbooks/configure.yml

Finds the running instances tagged ``segway:cluster`` and groups them as
``playbooks/launch.yml`` does: ``master``, ``compute`` and ``cluster_<name>``
(hyphens in the name become underscores). With one cluster chosen (``--cluster``,
``SEGWAY_CLUSTER`` or ``cluster =`` in the config file) hosts are named by their node
name (``master``, ``node001``, ...), which is what ``configure.yml`` expects; with all
clusters listed they are named ``<cluster>-<node>``.

Settings, strongest first: command line, environment, config file, defaults.

=========================  ==================================  =========================
setting                    environment                         config key
=========================  ==================================  =========================
cluster (default: all)     SEGWAY_CLUSTER                      cluster
region                     AWS_REGION, AWS_DEFAULT_REGION      region
profile                    AWS_PROFILE                         profile
endpoint URL               AWS_ENDPOINT_URL                    endpoint_url
cache TTL, s (0 = off)     SEGWAY_INVENTORY_CACHE_TTL          cache_ttl
cache directory            SEGWAY_INVENTORY_CACHE_DIR          cache_dir
SSH user                   SEGWAY_SSH_USER                     ssh_user
SSH private key file       SEGWAY_SSH_PRIVATE_KEY_FILE         ssh_private_key_file
=========================  ==================================  =========================

The config file is ``SEGWAY_INVENTORY_CONFIG`` or ``ec2_segway.ini`` next to this
script, section ``[ec2_segway]``. The cache (off unless a TTL is set) keeps one JSON file
per set of settings; ``--refresh-cache`` asks EC2 and rewrites it. Errors go to stderr
and the exit status is 1.

``--lookup`` is for playbooks/launch.yml and teardown.yml, which read through this
script (one boto3 process) what the cluster owns, the volumes they are given and where
the instance types are offered, before they create or delete anything; and launch.yml
adds its hosts to the in-memory inventory from this script's ``--list``.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger("ec2_segway")

CLUSTER_TAG = "segway:cluster"
ROLE_TAG = "segway:role"
NODE_TAG = "segway:node"
MOUNT_TAG = "segway:mount"
SHARED_TAG = "segway:shared"
VOLUME_TAG = "segway:volume"
MARKET_TAG = "segway:market"

DEFAULT_REGION = "us-east-1"
DEFAULT_SSH_USER = "admin"  # the login user of the official Debian images
DEFAULT_CACHE_DIR = "~/.cache/segway-cluster"
CONFIG_SECTION = "ec2_segway"
INSTANCE_TYPES_PER_CALL = 100  # DescribeInstanceTypes accepts at most 100 names
PYTHON = "/usr/bin/python3"


class InventoryError(Exception):
    """An error to report on stderr, without a traceback."""


@dataclass(frozen=True)
class Settings:
    cluster: str | None = None
    region: str = DEFAULT_REGION
    profile: str | None = None
    endpoint_url: str | None = None
    cache_ttl: int = 0
    cache_dir: str = DEFAULT_CACHE_DIR
    ssh_user: str = DEFAULT_SSH_USER
    ssh_private_key_file: str | None = None


# ---------------------------------------------------------------- settings


def read_config(path: Path | None) -> dict[str, str]:
    """The [ec2_segway] section of the config file, or {} when there is none."""
    if path is None or not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise InventoryError(f"cannot read {path}: {exc}") from exc
    if not parser.has_section(CONFIG_SECTION):
        return {}
    return {key: value.strip() for key, value in parser.items(CONFIG_SECTION)}


def resolve_settings(
    args: argparse.Namespace, env: Mapping[str, str], config: Mapping[str, str]
) -> Settings:
    """Merge command line, environment, config file and defaults, strongest first."""

    def pick(arg: str | None, env_names: Sequence[str], key: str, default: Any = None) -> Any:
        if arg not in (None, ""):
            return arg
        for name in env_names:
            if env.get(name):
                return env[name]
        if config.get(key):
            return config[key]
        return default

    ttl_text = pick(args.cache_ttl, ["SEGWAY_INVENTORY_CACHE_TTL"], "cache_ttl", "0")
    try:
        cache_ttl = int(ttl_text)
    except (TypeError, ValueError):
        raise InventoryError(f"cache TTL must be whole seconds, got {ttl_text!r}") from None
    if cache_ttl < 0:
        raise InventoryError(f"cache TTL must be 0 (off) or more seconds, got {cache_ttl}")
    cluster = pick(args.cluster, ["SEGWAY_CLUSTER"], "cluster")
    return Settings(
        cluster=None if cluster in (None, "", "all") else cluster,
        region=pick(args.region, ["AWS_REGION", "AWS_DEFAULT_REGION"], "region", DEFAULT_REGION),
        profile=pick(None, ["AWS_PROFILE"], "profile"),
        endpoint_url=pick(None, ["AWS_ENDPOINT_URL"], "endpoint_url"),
        cache_ttl=cache_ttl,
        cache_dir=pick(None, ["SEGWAY_INVENTORY_CACHE_DIR"], "cache_dir", DEFAULT_CACHE_DIR),
        ssh_user=pick(None, ["SEGWAY_SSH_USER"], "ssh_user", DEFAULT_SSH_USER),
        ssh_private_key_file=pick(None, ["SEGWAY_SSH_PRIVATE_KEY_FILE"], "ssh_private_key_file"),
    )


# ---------------------------------------------------------------- AWS reads


def ec2_client(settings: Settings) -> Any:
    try:
        import boto3  # noqa: PLC0415 - only needed when AWS is asked
        import botocore.config  # noqa: PLC0415
    except ImportError as exc:
        raise InventoryError(f"boto3 is required: {exc}") from exc
    session = boto3.Session(profile_name=settings.profile, region_name=settings.region)
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 5})
    return session.client("ec2", endpoint_url=settings.endpoint_url, config=config)


def fetch_instances(ec2: Any, cluster: str | None) -> list[dict[str, Any]]:
    """Running instances of one cluster (or of all clusters), every page."""
    filters = [{"Name": "instance-state-name", "Values": ["running"]}]
    if cluster:
        filters.append({"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]})
    else:
        filters.append({"Name": "tag-key", "Values": [CLUSTER_TAG]})
    instances: list[dict[str, Any]] = []
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=filters, PaginationConfig={"PageSize": 1000}
    ):
        for reservation in page["Reservations"]:
            instances.extend(reservation["Instances"])
    LOG.debug("%d running instances", len(instances))
    return instances


def fetch_instance_types(ec2: Any, names: Iterable[str]) -> dict[str, dict[str, int]]:
    """vCPUs and memory (MiB) of each instance type: one call per 100 types."""
    wanted = sorted(set(names))
    found: dict[str, dict[str, int]] = {}
    paginator = ec2.get_paginator("describe_instance_types")
    for start in range(0, len(wanted), INSTANCE_TYPES_PER_CALL):
        chunk = wanted[start : start + INSTANCE_TYPES_PER_CALL]
        for page in paginator.paginate(InstanceTypes=chunk):
            for item in page["InstanceTypes"]:
                found[item["InstanceType"]] = {
                    "vcpus": item["VCpuInfo"]["DefaultVCpus"],
                    "memory_mib": item["MemoryInfo"]["SizeInMiB"],
                }
    return found


def mount_entries(volumes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The master's data volumes as roles/ebs_mount takes them (ebs_mount_volumes), so
    configure.yml mounts (and roles/nfs shares) what launch.yml attached."""
    entries = []
    for vol in volumes:
        if not vol.get("mount"):
            continue
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", vol.get("name") or vol["mount"]).strip("-")
        entries.append(
            {
                "name": name or vol["volume_id"],
                "volume_id": vol["volume_id"],
                "device": vol["device"],
                "mount_point": vol["mount"],
                "share": vol["shared"],
            }
        )
    return entries


def fetch_master_volumes(ec2: Any, master_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Data volumes launch.yml attached to each master (tagged with their mount point)."""
    if not master_ids:
        return {}
    filters = [
        {"Name": "attachment.instance-id", "Values": list(master_ids)},
        {"Name": "tag-key", "Values": [MOUNT_TAG]},
    ]
    volumes: dict[str, list[dict[str, Any]]] = {}
    for page in ec2.get_paginator("describe_volumes").paginate(Filters=filters):
        for volume in page["Volumes"]:
            tags = tag_dict(volume.get("Tags"))
            for attachment in volume.get("Attachments", []):
                if attachment.get("InstanceId") not in master_ids:
                    continue
                volumes.setdefault(attachment["InstanceId"], []).append(
                    {
                        "volume_id": volume["VolumeId"],
                        "device": attachment.get("Device"),
                        "mount": tags.get(MOUNT_TAG),
                        "shared": tags.get(SHARED_TAG, "true").lower() == "true",
                        "name": tags.get(VOLUME_TAG, ""),
                        "size_gib": volume.get("Size"),
                    }
                )
    for items in volumes.values():
        items.sort(key=lambda v: v["device"] or "")
    return volumes


# ---------------------------------------------------------------- pure logic


def tag_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def group_name(cluster: str) -> str:
    """Ansible group of one cluster: cluster_<name>, hyphens made underscores."""
    return "cluster_" + "".join(c if c.isalnum() or c == "_" else "_" for c in cluster)


def known_hosts_file(cluster: str) -> str:
    """Per-cluster known_hosts: new instances are trusted on first use, then checked."""
    return f"~/.ssh/segway_{cluster}_known_hosts"


def ssh_options(cluster: str) -> str:
    return f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known_hosts_file(cluster)}"


def proxy_args(cluster: str, master_address: str, settings: Settings) -> str:
    """SSH options reaching a private-only node through the master."""
    key = f" -i {settings.ssh_private_key_file}" if settings.ssh_private_key_file else ""
    jump = f"ssh -W %h:%p -q{key} {ssh_options(cluster)} {settings.ssh_user}@{master_address}"
    return f'{ssh_options(cluster)} -o ProxyCommand="{jump}"'


def node_sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "master" else 1, name)


def build_inventory(
    instances: Sequence[Mapping[str, Any]],
    types: Mapping[str, Mapping[str, int]],
    volumes: Mapping[str, Sequence[Mapping[str, Any]]],
    settings: Settings,
) -> dict[str, Any]:
    """Ansible's --list JSON for the instances (no AWS calls here)."""
    # One node per (cluster, name); an unnamed or duplicated instance is reported, not guessed.
    nodes: dict[tuple[str, str], Mapping[str, Any]] = {}
    for inst in sorted(instances, key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"])):
        tags = tag_dict(inst.get("Tags"))
        cluster, node, role = tags.get(CLUSTER_TAG), tags.get(NODE_TAG), tags.get(ROLE_TAG)
        if not cluster or role not in ("master", "compute") or not node:
            LOG.warning(
                "instance %s of cluster %s has no node name yet (segway:role=%s, segway:node=%s); "
                "run launch.yml again to name it",
                inst["InstanceId"],
                cluster,
                role,
                node,
            )
            continue
        if (cluster, node) in nodes:
            LOG.warning(
                "instances %s and %s of cluster %s are both named %s; keeping the older",
                nodes[(cluster, node)]["InstanceId"],
                inst["InstanceId"],
                cluster,
                node,
            )
            continue
        nodes[(cluster, node)] = inst

    masters = {
        cluster: inst for (cluster, node), inst in nodes.items() if node_role(inst) == "master"
    }
    hostvars: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {"master": [], "compute": []}
    ordered = sorted(nodes.items(), key=lambda kv: (kv[0][0], *node_sort_key(kv[0][1])))
    for (cluster, node), inst in ordered:
        name = node if settings.cluster else f"{cluster}-{node}"
        role = node_role(inst)
        hostvars[name] = host_vars(
            inst, node=node, master=masters.get(cluster), types=types, settings=settings
        )
        if role == "master" and inst["InstanceId"] in volumes:
            hostvars[name]["segway_volumes"] = list(volumes[inst["InstanceId"]])
            hostvars[name]["ebs_mount_volumes"] = mount_entries(volumes[inst["InstanceId"]])
        groups[role].append(name)
        groups.setdefault(group_name(cluster), []).append(name)

    inventory: dict[str, Any] = {"_meta": {"hostvars": hostvars}}
    for group, hosts in groups.items():
        inventory[group] = {"hosts": hosts}
    inventory["all"] = {"children": [*sorted(groups), "ungrouped"]}
    return inventory


def node_role(inst: Mapping[str, Any]) -> str:
    return tag_dict(inst.get("Tags")).get(ROLE_TAG, "")


def host_vars(
    inst: Mapping[str, Any],
    *,
    node: str,
    master: Mapping[str, Any] | None,
    types: Mapping[str, Mapping[str, int]],
    settings: Settings,
) -> dict[str, Any]:
    """Connection and description variables of one node."""
    tags = tag_dict(inst.get("Tags"))
    cluster, role = tags[CLUSTER_TAG], tags[ROLE_TAG]
    private_ip = inst.get("PrivateIpAddress")
    public_ip = inst.get("PublicIpAddress")
    master_public = (master or {}).get("PublicIpAddress")
    if public_ip or role == "master" or not master_public:
        address, ssh_args = public_ip or private_ip, ssh_options(cluster)
    else:
        address, ssh_args = private_ip, proxy_args(cluster, master_public, settings)
    itype = inst.get("InstanceType", "")
    shape = types.get(itype, {})
    result: dict[str, Any] = {
        "ansible_host": address,
        "ansible_user": settings.ssh_user,
        "ansible_become": settings.ssh_user != "root",
        "ansible_python_interpreter": PYTHON,
        "ansible_ssh_common_args": ssh_args,
        "common_private_ip": private_ip,
        "segway_cluster": cluster,
        "segway_node": node,
        "segway_role": role,
        "segway_instance_id": inst["InstanceId"],
        "segway_instance_type": itype,
        "segway_zone": inst.get("Placement", {}).get("AvailabilityZone"),
        "segway_lifecycle": "spot" if inst.get("InstanceLifecycle") == "spot" else "on-demand",
        # What launch asked for; EC2 may report spot as above (moto never does).
        "segway_market": tags.get(MARKET_TAG, "on-demand"),
        "segway_vcpus": shape.get("vcpus"),
        "segway_memory_mib": shape.get("memory_mib"),
        "segway_private_ip": private_ip,
        "segway_public_ip": public_ip,
        "segway_image_id": inst.get("ImageId"),
    }
    if settings.ssh_private_key_file:
        result["ansible_ssh_private_key_file"] = settings.ssh_private_key_file
    return result


def fetch_offerings(ec2: Any, names: Sequence[str], zone: str | None) -> dict[str, list[str]]:
    """Per availability zone (only zone, if given), the instance types among names it offers."""
    filters = [{"Name": "instance-type", "Values": list(names)}]
    if zone:
        filters.append({"Name": "location", "Values": [zone]})
    offered: dict[str, set[str]] = {}
    for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone", Filters=filters
    ):
        for item in page["InstanceTypeOfferings"]:
            offered.setdefault(item["Location"], set()).add(item["InstanceType"])
    return {location: sorted(types) for location, types in sorted(offered.items())}


def fetch_volumes(ec2: Any, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Volumes matching the filters, in a plain form (every key present)."""
    volumes = []
    for page in ec2.get_paginator("describe_volumes").paginate(Filters=filters):
        for vol in page["Volumes"]:
            volumes.append(
                {
                    "id": vol["VolumeId"],
                    "zone": vol.get("AvailabilityZone", ""),
                    "size": vol.get("Size"),
                    "state": vol.get("State", ""),
                    "type": vol.get("VolumeType", ""),
                    "encrypted": bool(vol.get("Encrypted")),
                    "snapshot_id": vol.get("SnapshotId") or "",
                    "tags": tag_dict(vol.get("Tags")),
                    "attachments": [
                        {
                            "instance_id": a.get("InstanceId", ""),
                            "device": a.get("Device", ""),
                            "state": a.get("State", ""),
                            "delete_on_termination": bool(a.get("DeleteOnTermination")),
                        }
                        for a in vol.get("Attachments", [])
                    ],
                }
            )
    return sorted(volumes, key=lambda v: v["id"])


@contextlib.contextmanager
def aws_errors(settings: Settings) -> Iterator[None]:
    """Turn boto errors into one-line InventoryErrors."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    except ImportError as exc:
        raise InventoryError(f"boto3 is required: {exc}") from exc
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise InventoryError(
            f"EC2 refused {exc.operation_name} in {settings.region}: "
            f"{error.get('Code')}: {error.get('Message')}"
        ) from exc
    except BotoCoreError as exc:
        raise InventoryError(f"cannot read EC2 in {settings.region}: {exc}") from exc


def collect(settings: Settings) -> dict[str, Any]:
    """Read the clusters from EC2 and build the inventory."""
    with aws_errors(settings):
        ec2 = ec2_client(settings)
        instances = fetch_instances(ec2, settings.cluster)
        types = fetch_instance_types(ec2, (i.get("InstanceType", "") for i in instances))
        master_ids = [i["InstanceId"] for i in instances if node_role(i) == "master"]
        volumes = fetch_master_volumes(ec2, master_ids)
    return build_inventory(instances, types, volumes, settings)


LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def plain_instance(inst: Mapping[str, Any]) -> dict[str, Any]:
    """An instance with the fields launch and teardown use, every key present."""
    tags = tag_dict(inst.get("Tags"))
    placement = inst.get("Placement", {})
    return {
        "id": inst["InstanceId"],
        "node": tags.get(NODE_TAG, ""),
        "role": tags.get(ROLE_TAG, ""),
        "type": inst.get("InstanceType", ""),
        "state": inst.get("State", {}).get("Name", ""),
        "image_id": inst.get("ImageId", ""),
        "subnet_id": inst.get("SubnetId", ""),
        "vpc_id": inst.get("VpcId", ""),
        "zone": placement.get("AvailabilityZone", ""),
        "placement_group": placement.get("GroupName", ""),
        "launch_time": str(inst.get("LaunchTime", "")),
        "tags": tags,
        "block_devices": [
            {
                "device": b.get("DeviceName", ""),
                "volume_id": b.get("Ebs", {}).get("VolumeId", ""),
                "delete_on_termination": bool(b.get("Ebs", {}).get("DeleteOnTermination")),
            }
            for b in inst.get("BlockDeviceMappings", [])
            if "Ebs" in b
        ],
    }


def fetch_name_clashes(ec2: Any, cluster: str, name: str) -> list[dict[str, str]]:
    """Key pairs and security groups called name that are not the cluster's own."""
    named = [{"Name": "key-name", "Values": [name]}]
    clashes = [
        {"kind": "key pair", "id": k["KeyName"], "vpc_id": ""}
        for k in ec2.describe_key_pairs(Filters=named)["KeyPairs"]
        if tag_dict(k.get("Tags")).get(CLUSTER_TAG) != cluster
    ]
    for page in ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": "group-name", "Values": [name]}]
    ):
        clashes.extend(
            {"kind": "security group", "id": g["GroupId"], "vpc_id": g.get("VpcId", "")}
            for g in page["SecurityGroups"]
            if tag_dict(g.get("Tags")).get(CLUSTER_TAG) != cluster
        )
    return clashes


def fetch_owned(ec2: Any, cluster: str) -> dict[str, Any]:
    """Everything tagged as the cluster's, and the spot requests of its instances."""
    tagged = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]
    instances = [
        plain_instance(i)
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[*tagged, {"Name": "instance-state-name", "Values": LIVE_STATES}]
        )
        for r in page["Reservations"]
        for i in r["Instances"]
    ]
    open_states = {"Name": "state", "Values": ["open", "active"]}
    spot_ids = {
        s["SpotInstanceRequestId"]
        for page in ec2.get_paginator("describe_spot_instance_requests").paginate(
            Filters=[*tagged, open_states]
        )
        for s in page["SpotInstanceRequests"]
    }
    if instances:
        for page in ec2.get_paginator("describe_spot_instance_requests").paginate(
            Filters=[{"Name": "instance-id", "Values": [i["id"] for i in instances]}, open_states]
        ):
            spot_ids.update(s["SpotInstanceRequestId"] for s in page["SpotInstanceRequests"])
    templates = []
    for page in ec2.get_paginator("describe_launch_templates").paginate(Filters=tagged):
        for tmpl in page["LaunchTemplates"]:
            latest = ec2.describe_launch_template_versions(
                LaunchTemplateId=tmpl["LaunchTemplateId"], Versions=["$Latest"]
            )["LaunchTemplateVersions"]
            data = latest[0]["LaunchTemplateData"] if latest else {}
            templates.append(
                {
                    "name": tmpl["LaunchTemplateName"],
                    "id": tmpl["LaunchTemplateId"],
                    "placement_group": data.get("Placement", {}).get("GroupName", ""),
                }
            )
    groups = [
        {"id": g["GroupId"], "name": g["GroupName"]}
        for page in ec2.get_paginator("describe_security_groups").paginate(Filters=tagged)
        for g in page["SecurityGroups"]
    ]
    keys = [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]]
    used_groups = {i["placement_group"] for i in instances} | {
        t["placement_group"] for t in templates
    }
    return {
        "instances": sorted(instances, key=lambda i: (*node_sort_key(i["node"]), i["id"])),
        "spot_request_ids": sorted(spot_ids),
        "cluster_volumes": fetch_volumes(
            ec2, [*tagged, {"Name": "tag-key", "Values": [VOLUME_TAG]}]
        ),
        "launch_templates": sorted(templates, key=lambda t: t["name"]),
        "security_groups": groups,
        "key_pairs": sorted(keys),
        # moto_server has no placement groups: callers look them up only when used.
        "placement_groups_used": sorted(used_groups - {""}),
    }


def lookup(
    settings: Settings,
    *,
    volume_ids: Sequence[str],
    owned: bool,
    types: Sequence[str],
    zone: str | None,
    own_name: str | None = None,
) -> dict[str, Any]:
    """The read-only look-ups launch.yml and teardown.yml make, in one process.

    volumes: the given volumes that exist; owned: what --cluster owns (instances, spot
    requests, data volumes, launch templates, security groups, key pairs); name_clashes:
    key pairs and security groups called own_name that the cluster does not own;
    offerings: per zone, which of the types it offers; shapes: their vCPUs and memory.
    """
    result: dict[str, Any] = {}
    ids = [i.strip() for i in volume_ids if i.strip()]
    wanted = sorted({t.strip() for t in types if t.strip()})
    if owned and not settings.cluster:
        raise InventoryError("--owned needs --cluster")
    with aws_errors(settings):
        ec2 = ec2_client(settings)
        if ids:
            result["volumes"] = fetch_volumes(ec2, [{"Name": "volume-id", "Values": ids}])
        if owned:
            result["owned"] = fetch_owned(ec2, settings.cluster or "")
        if own_name:
            result["name_clashes"] = fetch_name_clashes(ec2, settings.cluster or "", own_name)
        if wanted:
            result["offerings"] = fetch_offerings(ec2, wanted, zone)
            offered = {t for zone_types in result["offerings"].values() for t in zone_types}
            result["shapes"] = fetch_instance_types(ec2, offered)
    return result


# ---------------------------------------------------------------- cache


def cache_path(settings: Settings) -> Path:
    key = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:16]
    return Path(settings.cache_dir).expanduser() / f"ec2_segway-{key}.json"


def read_cache(path: Path, ttl: int, now: float) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        LOG.warning("ignoring unreadable cache %s: %s", path, exc)
        return None
    age = now - float(data.get("created", 0))
    if not 0 <= age < ttl:
        LOG.debug("cache %s is %.0f s old (TTL %d s)", path, age, ttl)
        return None
    LOG.debug("using cache %s (%.0f s old)", path, age)
    return data.get("inventory")


def write_cache(path: Path, inventory: Mapping[str, Any], now: float) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ec2_segway-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"created": now, "inventory": inventory}, handle)
        os.replace(tmp, path)
    except OSError as exc:
        LOG.warning("cannot write cache %s: %s", path, exc)


def load_inventory(settings: Settings, refresh: bool) -> dict[str, Any]:
    if settings.cache_ttl == 0:
        return collect(settings)
    path = cache_path(settings)
    now = time.time()
    if not refresh:
        cached = read_cache(path, settings.cache_ttl, now)
        if cached is not None:
            return cached
    inventory = collect(settings)
    write_cache(path, inventory, now)
    return inventory


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ansible dynamic inventory of segway.cluster clusters on EC2.",
        epilog="Environment: SEGWAY_CLUSTER, AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, "
        "SEGWAY_INVENTORY_CACHE_TTL, SEGWAY_INVENTORY_CONFIG (see the module docstring).",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="print every group and host")
    mode.add_argument("--host", metavar="HOST", help="print one host's variables")
    mode.add_argument(
        "--lookup",
        action="store_true",
        help="print the look-ups asked for below as one JSON object (launch.yml and teardown.yml "
        "check their inputs with these before creating or deleting anything)",
    )
    lookups = parser.add_argument_group("look-ups (with --lookup)")
    lookups.add_argument("--volumes", metavar="IDS", help="comma-separated volume ids")
    lookups.add_argument(
        "--owned",
        action="store_true",
        help="what --cluster owns: instances, spot requests, data volumes, launch templates, "
        "security groups, key pairs",
    )
    lookups.add_argument(
        "--offerings", metavar="TYPES", help="comma-separated instance types: where each is offered"
    )
    lookups.add_argument("--zone", help="only this availability zone, for --offerings")
    lookups.add_argument(
        "--own-name",
        metavar="NAME",
        help="report key pairs and security groups called NAME that --cluster does not own",
    )
    parser.add_argument("--cluster", help="only this cluster ('all' for every cluster)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION or us-east-1)")
    parser.add_argument("--cache-ttl", help="seconds a cached answer stays valid (0: no cache)")
    parser.add_argument(
        "--refresh-cache", action="store_true", help="ask EC2 even if the cache is fresh"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log AWS calls on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="ec2_segway: %(levelname)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        env = os.environ
        config_path = Path(
            env.get("SEGWAY_INVENTORY_CONFIG")
            or Path(__file__).resolve().with_name("ec2_segway.ini")
        )
        settings = resolve_settings(args, env, read_config(config_path))
        if args.lookup:
            found = lookup(
                settings,
                volume_ids=(args.volumes or "").split(","),
                owned=args.owned,
                types=(args.offerings or "").split(","),
                zone=args.zone,
                own_name=args.own_name,
            )
            json.dump(found, sys.stdout, sort_keys=True)
            sys.stdout.write("\n")
            return 0
        inventory = load_inventory(settings, args.refresh_cache)
    except InventoryError as exc:
        LOG.error("%s", exc)
        return 1
    if args.host is not None:
        hostvars = inventory["_meta"]["hostvars"]
        if args.host not in hostvars:
            LOG.error("no running host named %s", args.host)
            return 1
        json.dump(hostvars[args.host], sys.stdout, indent=1, sort_keys=True)
    else:
        json.dump(inventory, sys.stdout, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
