#!/usr/bin/env python3
"""Dynamic inventory of segway.cluster clusters on EC2.

    SEGWAY_CLUSTER=segway inventory/ec2_segway.py --list   # one cluster (the usual case)
    inventory/ec2_segway.py --list --cluster all            # every cluster, each in its own group
    inventory/ec2_segway.py --host master                   # one host's variables
    SEGWAY_CLUSTER=segway ansible-playbook -i inventory/ec2_segway.py playbooks/configure.yml

Finds the running instances tagged ``segway:cluster`` and groups them as
``playbooks/launch.yml`` does: ``master``, ``compute`` and ``cluster_<name>``
(hyphens in the name become underscores). With one cluster chosen (``--cluster``,
``SEGWAY_CLUSTER`` or ``cluster =`` in the config file) hosts are named by their node
name (``master``, ``node001``, ...), which is what ``configure.yml`` expects.

The groups ``master`` and ``compute`` never mix two clusters, since a playbook run on
them would configure both as one. With no cluster chosen, the listing works while
the account holds one cluster (hosts named ``<cluster>-<node>``) and stops, naming
the clusters, when it holds several. ``--cluster all`` (or ``SEGWAY_CLUSTER=all``)
asks for every cluster on purpose: hosts are named ``<cluster>-<node>`` and are only
in their ``cluster_<name>`` group; ``master`` and ``compute`` stay empty. A cluster
name is 1-32 lowercase letters, digits and hyphens starting with a letter (no
wildcards); instances whose ``segway:cluster`` tag is not such a name are skipped.

Settings, strongest first: command line, environment, config file, defaults.

=========================  ==================================  =========================
setting                    environment                         config key
=========================  ==================================  =========================
cluster (default: none)    SEGWAY_CLUSTER                      cluster
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
per set of settings, written with mode 0600 in a directory made with mode 0700; a cache
file that is not a regular file of the current user readable by it alone is ignored
(with a warning), and a corrupt one is replaced; ``--refresh-cache`` asks EC2 and
rewrites it. Errors go to stderr and the exit status is 1.

Host variables include ``segway_owner``, the ``segway:owner`` tag of the instance (the
ARN of the identity that launched it, empty on instances of older versions), which
playbooks/remove_nodes.yml checks against the caller.

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
import shlex
import stat
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
OWNER_TAG = "segway:owner"
ATTACHED_TAG = "segway:attached-to"
FORMAT_TAG = "segway:format"
FSTYPE_TAG = "segway:fstype"
PARTITION_TAG = "segway:partition"

# The rule launch.yml checks cluster_name with; 'all' (every cluster) is not a name.
CLUSTER_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
ALL_CLUSTERS = "all"
HOME_MOUNT = "/home"

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
    # --cluster all: every cluster, each in its own cluster_<name> group only.
    all_clusters: bool = False
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


def check_cluster(value: str, source: str) -> str:
    """value if it is a cluster name or 'all'; else an error naming where it came from."""
    if value == ALL_CLUSTERS or CLUSTER_RE.match(value):
        return value
    hint = " (wildcards such as * and ? are not allowed)" if re.search(r"[*?\[\]]", value) else ""
    raise InventoryError(
        f"cluster {value!r} from {source} is not allowed{hint}: use a cluster name (1-32 "
        f"lowercase letters, digits and hyphens, starting with a letter) or 'all'"
    )


def resolve_settings(
    args: argparse.Namespace, env: Mapping[str, str], config: Mapping[str, str]
) -> Settings:
    """Merge command line, environment, config file and defaults, strongest first."""

    def pick_from(
        arg: str | None, env_names: Sequence[str], key: str, default: Any = None
    ) -> tuple[Any, str]:
        if arg not in (None, ""):
            return arg, "the command line"
        for name in env_names:
            if env.get(name):
                return env[name], name
        if config.get(key):
            return config[key], f"the config file (key {key})"
        return default, "the default"

    def pick(arg: str | None, env_names: Sequence[str], key: str, default: Any = None) -> Any:
        return pick_from(arg, env_names, key, default)[0]

    ttl_text = pick(args.cache_ttl, ["SEGWAY_INVENTORY_CACHE_TTL"], "cache_ttl", "0")
    try:
        cache_ttl = int(ttl_text)
    except (TypeError, ValueError):
        raise InventoryError(f"cache TTL must be whole seconds, got {ttl_text!r}") from None
    if cache_ttl < 0:
        raise InventoryError(f"cache TTL must be 0 (off) or more seconds, got {cache_ttl}")
    cluster, source = pick_from(args.cluster, ["SEGWAY_CLUSTER"], "cluster")
    if cluster is not None:
        source = "--cluster" if source == "the command line" else source
        cluster = check_cluster(str(cluster), source)
    return Settings(
        cluster=None if cluster in (None, ALL_CLUSTERS) else cluster,
        all_clusters=cluster == ALL_CLUSTERS,
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
    configure.yml mounts (and roles/nfs shares) what launch.yml attached.

    format comes from the volume's segway:format tag and is ``never`` without it: only a
    volume launch tagged as created empty (``if_blank``) is ever formatted. fstype and
    partition come from their tags when set. The /home volume gets copy_existing, so
    what the master's /home held is copied onto it when it is formatted."""
    entries = []
    for vol in volumes:
        if not vol.get("mount"):
            continue
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", vol.get("name") or vol["mount"]).strip("-")
        entry: dict[str, Any] = {
            "name": name or vol["volume_id"],
            "volume_id": vol["volume_id"],
            "device": vol["device"],
            "mount_point": vol["mount"],
            "share": vol["shared"],
            "format": vol.get("format") or "never",
        }
        if vol.get("fstype"):
            entry["fstype"] = vol["fstype"]
        if vol.get("partition") is not None:
            entry["partition"] = vol["partition"]
        if vol["mount"] == HOME_MOUNT:
            entry["copy_existing"] = True
        entries.append(entry)
    return entries


def volume_format(tags: Mapping[str, str], volume_id: str) -> str:
    """segway:format, or never: nothing not known to be created empty is formatted."""
    value = tags.get(FORMAT_TAG, "never")
    if value not in ("if_blank", "never"):
        LOG.warning(
            "volume %s: segway:format=%s is not if_blank or never; using never", volume_id, value
        )
        return "never"
    return value


def volume_partition(tags: Mapping[str, str], volume_id: str) -> int | None:
    """segway:partition as a number, None when unset or not a positive whole number."""
    text = tags.get(PARTITION_TAG, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        LOG.warning(
            "volume %s: segway:partition=%s is not a partition number; ignored", volume_id, text
        )
        return None
    return int(text)


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
                        "format": volume_format(tags, volume["VolumeId"]),
                        "fstype": tags.get(FSTYPE_TAG, ""),
                        "partition": volume_partition(tags, volume["VolumeId"]),
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
    """SSH options reaching a private-only node through the master.

    Two readers parse this: Ansible splits ansible_ssh_common_args like a shell (shlex),
    then ssh expands %-tokens in the ProxyCommand and runs it with /bin/sh. So the key
    path and user@host are shell-quoted and their % doubled (one argument each, whatever
    they hold), and the whole ProxyCommand option is quoted once more for Ansible."""

    def arg(value: str) -> str:
        return shlex.quote(value).replace("%", "%%")

    key = f" -i {arg(settings.ssh_private_key_file)}" if settings.ssh_private_key_file else ""
    target = arg(f"{settings.ssh_user}@{master_address}")
    jump = f"ssh -W %h:%p -q{key} {ssh_options(cluster)} {target}"
    return f"{ssh_options(cluster)} -o {shlex.quote('ProxyCommand=' + jump)}"


def node_sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "master" else 1, name)


def build_inventory(
    instances: Sequence[Mapping[str, Any]],
    types: Mapping[str, Mapping[str, int]],
    volumes: Mapping[str, Sequence[Mapping[str, Any]]],
    settings: Settings,
) -> dict[str, Any]:
    """Ansible's --list JSON for the instances (no AWS calls here).

    Groups master and compute hold one cluster only: with no cluster chosen and nodes
    of several clusters, an InventoryError names them; with --cluster all, master and
    compute stay empty and each cluster's hosts are in its cluster_<name> group."""
    # One node per (cluster, name); an unnamed or duplicated instance is reported, not guessed.
    nodes: dict[tuple[str, str], Mapping[str, Any]] = {}
    for inst in sorted(instances, key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"])):
        tags = tag_dict(inst.get("Tags"))
        cluster, node, role = tags.get(CLUSTER_TAG), tags.get(NODE_TAG), tags.get(ROLE_TAG)
        if settings.cluster and cluster != settings.cluster:
            continue
        if cluster and not CLUSTER_RE.match(cluster):
            LOG.warning(
                "instance %s: skipped, its segway:cluster tag %r is not a cluster name",
                inst["InstanceId"],
                cluster,
            )
            continue
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

    clusters = sorted({cluster for cluster, _ in nodes})
    if not settings.cluster and not settings.all_clusters and len(clusters) > 1:
        raise InventoryError(
            f"running instances of {len(clusters)} clusters were found ({', '.join(clusters)}) "
            "and no cluster was chosen: groups master and compute would mix them. Choose one "
            "with SEGWAY_CLUSTER=<name> (or --cluster <name>, or cluster = in the config file); "
            "--cluster all lists every cluster, each in its own cluster_<name> group only"
        )
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
        if not settings.all_clusters:
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
        # Who launched it (segway:owner; empty for instances of older versions).
        "segway_owner": tags.get(OWNER_TAG, ""),
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
        "owner": tags.get(OWNER_TAG, ""),
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


def fetch_volume_name_clashes(ec2: Any, cluster: str, names: Sequence[str]) -> list[dict[str, Any]]:
    """Volumes whose Name tag is one of names but that the cluster does not own (no
    segway:cluster=<cluster> tag): launch stops on them rather than adopt someone's volume."""
    if not names:
        return []
    found = fetch_volumes(ec2, [{"Name": "tag:Name", "Values": list(names)}])
    return [
        {
            "id": v["id"],
            "name": v["tags"].get("Name", ""),
            "tags": v["tags"],
            "state": v["state"],
            "zone": v["zone"],
        }
        for v in found
        if v["tags"].get(CLUSTER_TAG) != cluster
    ]


def lock_name(cluster: str) -> str:
    """The launch template launch.yml holds as its lock (ec2_cluster_lock_name)."""
    return f"segway-{cluster}-launch-lock"


def add_rule_users(ec2: Any, cluster: str, users: dict[str, list[dict[str, str]]]) -> None:
    """Add to users the security groups (not the cluster's) whose rules name its groups."""
    for page in ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": "ip-permission.group-id", "Values": list(users)}]
    ):
        for other in page["SecurityGroups"]:
            tags = tag_dict(other.get("Tags"))
            if other["GroupId"] in users or tags.get(CLUSTER_TAG) == cluster:
                continue
            named = {
                pair.get("GroupId")
                for rule in other.get("IpPermissions", []) + other.get("IpPermissionsEgress", [])
                for pair in rule.get("UserIdGroupPairs", [])
            }
            for group_id in sorted(named & set(users)):
                users[group_id].append(
                    {
                        "kind": "security group",
                        "id": other["GroupId"],
                        "interface_id": "",
                        "name": other.get("GroupName", ""),
                        "cluster": tags.get(CLUSTER_TAG, ""),
                        "state": "",
                    }
                )


def fetch_group_users(ec2: Any, cluster: str, group_ids: Sequence[str]) -> dict[str, list[dict]]:
    """Per security group of the cluster, what else uses it, so EC2 would refuse to delete
    it (DependencyViolation): network interfaces of instances that are not the cluster's
    (and not terminated), interfaces attached to no instance, and other clusters' or
    users' security groups whose inbound rules name it. The cluster's own instances are
    not listed: teardown terminates them, and their interfaces go with them."""
    users: dict[str, list[dict[str, str]]] = {g: [] for g in group_ids}
    if not group_ids:
        return users
    interfaces = [
        eni
        for page in ec2.get_paginator("describe_network_interfaces").paginate(
            Filters=[{"Name": "group-id", "Values": list(group_ids)}]
        )
        for eni in page["NetworkInterfaces"]
    ]
    attached = sorted(
        {(eni.get("Attachment") or {}).get("InstanceId", "") for eni in interfaces} - {""}
    )
    instances: dict[str, Mapping[str, Any]] = {}
    if attached:
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": attached}]
        ):
            for reservation in page["Reservations"]:
                instances.update({i["InstanceId"]: i for i in reservation["Instances"]})
    for eni in interfaces:
        instance_id = (eni.get("Attachment") or {}).get("InstanceId", "")
        inst = instances.get(instance_id)
        if inst is not None:
            tags = tag_dict(inst.get("Tags"))
            state = inst.get("State", {}).get("Name", "")
            if tags.get(CLUSTER_TAG) == cluster or state == "terminated":
                continue
            user = {
                "kind": "instance",
                "id": instance_id,
                "interface_id": eni["NetworkInterfaceId"],
                "name": tags.get("Name", ""),
                "cluster": tags.get(CLUSTER_TAG, ""),
                "state": state,
            }
        else:
            user = {
                "kind": "network interface",
                "id": eni["NetworkInterfaceId"],
                "interface_id": eni["NetworkInterfaceId"],
                "name": eni.get("Description", ""),
                "cluster": "",
                "state": eni.get("Status", ""),
            }
            if instance_id:
                user["instance_id"] = instance_id
        for group in eni.get("Groups", []):
            listed = users.get(group.get("GroupId", ""))
            if listed is not None and all(u["id"] != user["id"] for u in listed):
                listed.append(user)
    add_rule_users(ec2, cluster, users)
    return users


def fetch_owned(ec2: Any, cluster: str) -> dict[str, Any]:
    """Everything tagged as the cluster's, and the spot requests of its instances.

    Each instance, volume, launch template and security group carries its tags and its
    owner (the segway:owner tag, empty when unset); resources lists all of them and the
    key pairs as {kind, id, name, owner} and owners the distinct owners, for the owner
    check (roles/ec2_cluster/tasks/owner.yml). lock is the launch lock template ({} when
    none); data_volumes the volumes attached to the cluster's instances that outlive
    them (also those the user attached by id); security_groups[].users what else uses
    each group (see fetch_group_users)."""
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
            tags = tag_dict(tmpl.get("Tags"))
            templates.append(
                {
                    "name": tmpl["LaunchTemplateName"],
                    "id": tmpl["LaunchTemplateId"],
                    "placement_group": data.get("Placement", {}).get("GroupName", ""),
                    "created": str(tmpl.get("CreateTime", "")),
                    "tags": tags,
                    "owner": tags.get(OWNER_TAG, ""),
                    "lock": tmpl["LaunchTemplateName"] == lock_name(cluster),
                }
            )
    groups = [
        {
            "id": g["GroupId"],
            "name": g["GroupName"],
            "vpc_id": g.get("VpcId", ""),
            "tags": tag_dict(g.get("Tags")),
            "owner": tag_dict(g.get("Tags")).get(OWNER_TAG, ""),
        }
        for page in ec2.get_paginator("describe_security_groups").paginate(Filters=tagged)
        for g in page["SecurityGroups"]
    ]
    group_users = fetch_group_users(ec2, cluster, [g["id"] for g in groups])
    for group in groups:
        group["users"] = group_users[group["id"]]
    key_details = [
        {"name": k["KeyName"], "owner": tag_dict(k.get("Tags")).get(OWNER_TAG, "")}
        for k in ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]
    ]
    cluster_volumes = fetch_volumes(ec2, [*tagged, {"Name": "tag-key", "Values": [VOLUME_TAG]}])
    for vol in cluster_volumes:
        vol["owner"] = vol["tags"].get(OWNER_TAG, "")
    data_ids = sorted(
        {
            b["volume_id"]
            for i in instances
            for b in i["block_devices"]
            if not b["delete_on_termination"] and b["volume_id"]
        }
    )
    data_volumes = (
        fetch_volumes(ec2, [{"Name": "volume-id", "Values": data_ids}]) if data_ids else []
    )
    used_groups = {i["placement_group"] for i in instances} | {
        t["placement_group"] for t in templates
    }
    resources = (
        [
            {
                "kind": "instance",
                "id": i["id"],
                "name": i["tags"].get("Name", i["node"]),
                "owner": i["owner"],
            }
            for i in instances
        ]
        + [
            {
                "kind": "volume",
                "id": v["id"],
                "name": v["tags"].get("Name", ""),
                "owner": v["owner"],
            }
            for v in cluster_volumes
        ]
        + [
            {"kind": "launch template", "id": t["id"], "name": t["name"], "owner": t["owner"]}
            for t in templates
        ]
        + [
            {"kind": "security group", "id": g["id"], "name": g["name"], "owner": g["owner"]}
            for g in groups
        ]
        + [
            {"kind": "key pair", "id": k["name"], "name": k["name"], "owner": k["owner"]}
            for k in key_details
        ]
    )
    locks = [t for t in templates if t["lock"]]
    return {
        "instances": sorted(instances, key=lambda i: (*node_sort_key(i["node"]), i["id"])),
        "spot_request_ids": sorted(spot_ids),
        "cluster_volumes": cluster_volumes,
        "data_volumes": data_volumes,
        "launch_templates": sorted(templates, key=lambda t: t["name"]),
        "lock": locks[0] if locks else {},
        "security_groups": groups,
        "key_pairs": sorted(k["name"] for k in key_details),
        "resources": resources,
        "owners": sorted({r["owner"] for r in resources} - {""}),
        # moto_server has no placement groups: callers look them up only when used.
        "placement_groups_used": sorted(used_groups - {""}),
    }


# ---------------------------------------------------------------- teardown plan


def volume_label(vol: Mapping[str, Any]) -> str:
    """(name, mount...) of a volume for the plan: /home's and the user's are called out."""
    tags = vol.get("tags", {})
    name = tags.get(VOLUME_TAG) or tags.get("Name") or "unnamed"
    mount = tags.get(MOUNT_TAG, "")
    where = f"{name}, {mount}" if mount else name
    if tags.get(VOLUME_TAG) == "home" or mount == HOME_MOUNT:
        return f"({where}: the files of the cluster user)"
    if tags.get(ATTACHED_TAG) or not tags.get(CLUSTER_TAG):
        return f"({where}: yours, attached by id; never deleted)"
    return f"({where})"


def group_user_text(user: Mapping[str, str]) -> str:
    """One user of a security group, as the plan and the report name it."""
    if user["kind"] == "instance":
        about = [
            f"Name {user['name']}" if user["name"] else "",
            f"cluster {user['cluster']}" if user["cluster"] else "",
            user["state"],
        ]
        details = ", ".join(a for a in about if a)
        return f"instance {user['id']} ({details})" if details else f"instance {user['id']}"
    if user["kind"] == "security group":
        owner = f", cluster {user['cluster']}" if user["cluster"] else ""
        return f"a rule of security group {user['id']} ({user['name']}{owner})"
    described = f" ({user['name']})" if user["name"] else ""
    return f"network interface {user['id']}{described}"


def held_group_note(group: Mapping[str, Any]) -> str:
    """Why a security group is kept and how to finish."""
    users = group["users"]
    what = "; ".join(group_user_text(u) for u in users)
    fix = []
    if any(u["kind"] == "instance" for u in users):
        fix.append("remove that instance from the group (or terminate it)")
    if any(u["kind"] == "network interface" for u in users):
        fix.append("remove the group from that network interface (or delete the interface)")
    if any(u["kind"] == "security group" for u in users):
        fix.append("delete the rule that names the group")
    return (
        f"security group {group['id']} ({group['name']}) is kept: EC2 refuses to delete it while "
        f"{what} uses it. To finish, {' and '.join(fix)}, then run teardown again."
    )


def teardown_plan(owned: Mapping[str, Any], delete_volumes: bool) -> dict[str, Any]:
    """What teardown does with what the cluster owns (fetch_owned), and the plan's lines.

    Volumes outlive the instances: the data volumes attached to them are detached; the
    volumes launch created (cluster_volumes) are deleted only with delete_volumes, those
    the user attached by id never. A security group something else still uses is kept
    (EC2 would refuse to delete it). empty: nothing to change (kept things do not count).
    The placement group is looked up by the playbook (moto_server has none)."""
    instances = owned["instances"]
    by_id = {v["id"]: v for v in [*owned["data_volumes"], *owned["cluster_volumes"]]}
    data = [
        {
            "id": b["volume_id"],
            "device": b["device"],
            "instance_id": i["id"],
            "node": i["node"] or i["id"],
        }
        for i in instances
        for b in i["block_devices"]
        if not b["delete_on_termination"] and b["volume_id"]
    ]
    created = [v["id"] for v in owned["cluster_volumes"]]
    # A volume of the cluster that someone attached to another instance stays (EC2 would
    # refuse to delete it, and it is in use).
    ours = {i["id"] for i in instances}
    elsewhere = {
        v["id"]: sorted({a["instance_id"] for a in v["attachments"]} - ours)
        for v in owned["cluster_volumes"]
        if {a["instance_id"] for a in v["attachments"]} - ours
    }
    deleted = [v for v in created if v not in elsewhere] if delete_volumes else []
    kept = sorted({*[d["id"] for d in data], *created} - set(deleted))
    groups = [g for g in owned["security_groups"] if not g.get("users")]
    held = [g for g in owned["security_groups"] if g.get("users")]
    templates = owned["launch_templates"]

    def label(volume_id: str) -> str:
        return volume_label(by_id.get(volume_id, {"tags": {}}))

    plan = [
        f"terminate instance {i['id']} ({i['node'] or 'unnamed'}, {i['type']}, {i['state']})"
        for i in instances
    ]
    plan += [f"cancel spot request {s}" for s in owned["spot_request_ids"]]
    plan += [
        f"detach volume {d['id']} {label(d['id'])} ({d['device']} of {d['node']})" for d in data
    ]
    plan += [f"DELETE volume {v} {label(v)} and its data (delete_volumes=true)" for v in deleted]
    plan += [
        f"keep volume {v} {label(v)}"
        + (f" (attached to {', '.join(elsewhere[v])}, not the cluster's)" if v in elsewhere else "")
        for v in kept
    ]
    plan += [
        f"delete launch template {t['name']}" + (" (the launch lock)" if t.get("lock") else "")
        for t in templates
    ]
    plan += [f"delete security group {g['id']} ({g['name']})" for g in groups]
    plan += [f"keep {held_group_note(g)}" for g in held]
    plan += [f"delete key pair {k} (imported by launch)" for k in owned["key_pairs"]]
    result = {
        "instances": instances,
        "spot_request_ids": owned["spot_request_ids"],
        "data_volumes": data,
        "delete_volume_ids": deleted,
        "kept_volume_ids": kept,
        "kept_volumes": [{"id": v, "label": label(v)} for v in kept],
        "launch_templates": [t["name"] for t in templates],
        "security_groups": [{"id": g["id"], "name": g["name"]} for g in groups],
        "kept_security_groups": [
            {"id": g["id"], "name": g["name"], "users": g["users"]} for g in held
        ],
        "group_notes": [held_group_note(g) for g in held],
        "key_pairs": owned["key_pairs"],
        "plan": plan,
    }
    result["empty"] = not any(
        result[k]
        for k in (
            "instances",
            "spot_request_ids",
            "data_volumes",
            "delete_volume_ids",
            "launch_templates",
            "security_groups",
            "key_pairs",
        )
    )
    return result


def lookup(
    settings: Settings,
    *,
    volume_ids: Sequence[str],
    owned: bool,
    types: Sequence[str],
    zone: str | None,
    own_name: str | None = None,
    volume_names: Sequence[str] = (),
    teardown: bool = False,
    delete_volumes: bool = False,
) -> dict[str, Any]:
    """The read-only look-ups launch.yml and teardown.yml make, in one process.

    volumes: the given volumes that exist; owned: what --cluster owns (see fetch_owned);
    teardown: what teardown would do with it (see teardown_plan; implies owned);
    name_clashes: key pairs and security groups called own_name that the cluster does not
    own; volume_name_clashes: volumes whose Name tag is one of volume_names that the
    cluster does not own; offerings: per zone, which of the types it offers; shapes:
    their vCPUs and memory.
    """
    result: dict[str, Any] = {}
    ids = [i.strip() for i in volume_ids if i.strip()]
    names = sorted({n.strip() for n in volume_names if n.strip()})
    wanted = sorted({t.strip() for t in types if t.strip()})
    for flag, asked in (
        ("--owned", owned),
        ("--teardown", teardown),
        ("--own-name", own_name),
        ("--volume-names", names),
    ):
        if asked and not settings.cluster:
            raise InventoryError(f"{flag} needs one cluster: --cluster <name> (not all)")
    with aws_errors(settings):
        ec2 = ec2_client(settings)
        if ids:
            result["volumes"] = fetch_volumes(ec2, [{"Name": "volume-id", "Values": ids}])
        if owned or teardown:
            result["owned"] = fetch_owned(ec2, settings.cluster or "")
        if teardown:
            result["teardown"] = teardown_plan(result["owned"], delete_volumes)
        if own_name:
            result["name_clashes"] = fetch_name_clashes(ec2, settings.cluster or "", own_name)
        if names:
            result["volume_name_clashes"] = fetch_volume_name_clashes(
                ec2, settings.cluster or "", names
            )
        if wanted:
            result["offerings"] = fetch_offerings(ec2, wanted, zone)
            offered = {t for zone_types in result["offerings"].values() for t in zone_types}
            result["shapes"] = fetch_instance_types(ec2, offered)
    return result


# ---------------------------------------------------------------- cache


def cache_path(settings: Settings) -> Path:
    key = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:16]
    return Path(settings.cache_dir).expanduser() / f"ec2_segway-{key}.json"


def open_private(path: Path) -> Any | None:
    """path opened for reading if it is a regular file (not a link) of the current user
    that no one else may read or write; None (with a warning) otherwise, or if absent."""
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        return None
    except OSError as exc:
        LOG.warning("ignoring cache %s (%s); asking EC2", path, exc.strerror or exc)
        return None
    info = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(info.st_mode):
        problem = "it is not a regular file"
    elif info.st_uid != os.geteuid():
        problem = f"it belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})"
    elif stat.S_IMODE(info.st_mode) & 0o077:
        problem = f"its mode is {stat.S_IMODE(info.st_mode):04o}, not 0600"
    if problem:
        os.close(fd)
        LOG.warning("ignoring cache %s: %s; asking EC2", path, problem)
        return None
    return os.fdopen(fd, encoding="utf-8")


def read_cache(path: Path, ttl: int, now: float) -> dict[str, Any] | None:
    """The cached inventory if the cache file is trustworthy, whole and fresh, else None."""
    handle = open_private(path)
    if handle is None:
        return None
    try:
        with handle:
            data = json.load(handle)
        if not isinstance(data, dict) or not isinstance(data.get("created"), int | float):
            raise TypeError("not an object with a creation time")
        created = float(data["created"])
        inventory = data.get("inventory")
        if not isinstance(inventory, dict) or not isinstance(inventory.get("_meta"), dict):
            raise TypeError("no inventory in it")
    except (OSError, ValueError, TypeError) as exc:
        LOG.warning("ignoring corrupt cache %s (%s); asking EC2", path, exc)
        return None
    age = now - created
    if not 0 <= age < ttl:
        LOG.debug("cache %s is %.0f s old (TTL %d s)", path, age, ttl)
        return None
    LOG.debug("using cache %s (%.0f s old)", path, age)
    return inventory


def write_cache(path: Path, inventory: Mapping[str, Any], now: float) -> None:
    """Write the cache atomically, mode 0600, in a directory made with mode 0700."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ec2_segway-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"created": now, "inventory": inventory}, handle)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
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
        help="what --cluster owns: instances, spot requests, data volumes, launch templates "
        "(and the launch lock), security groups (and what else uses them), key pairs, with "
        "their owners (segway:owner)",
    )
    lookups.add_argument(
        "--teardown",
        action="store_true",
        help="what teardown would do with what --cluster owns, and its plan (implies --owned)",
    )
    lookups.add_argument(
        "--delete-volumes",
        action="store_true",
        help="with --teardown: the volumes launch created are deleted, not kept",
    )
    lookups.add_argument(
        "--volume-names",
        metavar="NAMES",
        help="comma-separated Name tags: report volumes so named that --cluster does not own",
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
    parser.add_argument(
        "--cluster",
        help="only this cluster; 'all' lists every cluster, each in its own cluster_<name> group",
    )
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
                volume_names=(args.volume_names or "").split(","),
                teardown=args.teardown,
                delete_volumes=args.delete_volumes,
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
