# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What belongs to a segway.cluster cluster on EC2, read once for every caller.

inventory/ec2_segway.py (the dynamic inventory), the module
segway.cluster.ec2_cluster_info (launch's and teardown's look-ups) and the filters in
plugins/filter/ec2_cluster.py all use this file, so "the cluster's nodes", their host
variables and "what the cluster owns" have one definition.

The inventory script runs outside Ansible (ansible-inventory executes it, possibly from
a clone with no ansible_collections/ above it) and loads this file by its path: it
imports nothing but the standard library. The fetch_* functions take a boto3 EC2 client
and let botocore's errors through; each caller reports them its own way.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, NamedTuple

LOG = logging.getLogger("segway.ec2_cluster")

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

# Compute nodes' names live on the cluster's master, not on each node: EC2 gives every
# instance of a fleet the same tags, so a name of each node's own would cost one
# CreateTags per node. Keys segway:names:1, segway:names:2, ... hold space-separated
# i-<id>=nodeNNN pairs (encode_node_names). EC2 allows 50 tags per resource and 256
# characters per value: NAMES_TAGS_MAX keys leave the master 10 tags of its own (it has
# 5: Name, segway:cluster, segway:owner, segway:role, segway:node), and a pair of a
# 17-digit instance id and nodeNNN is 27 characters, 9 to a value (251 with the spaces).
NAMES_TAG_PREFIX = "segway:names:"
TAG_VALUE_MAX = 256
NAMES_TAGS_MAX = 40
NAME_PAIRS_PER_TAG = 9
# The most compute nodes an EC2 cluster may have (launch refuses more; the role's
# ec2_cluster_max_compute_count is this number).
MAX_EC2_COMPUTE_COUNT = NAMES_TAGS_MAX * NAME_PAIRS_PER_TAG
NODE_NAME_RE = re.compile(r"^node[0-9]{3,4}$")
INSTANCE_ID_RE = re.compile(r"^i-[0-9a-f]{8,17}$")

# The rule launch.yml checks cluster_name with.
CLUSTER_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
HOME_MOUNT = "/home"
BUILD_MOUNT = "/segway-build"
DEFAULT_SSH_USER = "admin"  # the login user of the official Debian images
INSTANCE_TYPES_PER_CALL = 100  # DescribeInstanceTypes accepts at most 100 names
PYTHON = "/usr/bin/python3"
# Instance states that count as "the node exists" (not terminated or shutting down).
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


class Ec2ClusterError(Exception):
    """A refusal to report as one line (no traceback): the inventory script prints it on
    stderr, the module fails with it."""


class HostAccess(NamedTuple):
    """Which hosts a listing holds and how Ansible logs in to them.

    cluster: only this cluster, hosts named by node (master, node001); None: every
    cluster, hosts named <cluster>-<node>, and all_clusters says whether that was asked
    for (then groups master and compute stay empty) or the account should hold one."""

    cluster: str | None = None
    all_clusters: bool = False
    ssh_user: str = DEFAULT_SSH_USER
    ssh_private_key_file: str | None = None
    # public: the master (and any node with a public address) by its public address, the
    # other nodes through the master; private: every node by its private address, for a
    # controller inside the VPC (a bastion, a VPN, SSM port forwarding).
    ssh_address: str = "public"


# How Ansible reaches the nodes (HostAccess.ssh_address).
SSH_ADDRESSES = ("public", "private")


# ---------------------------------------------------------------- EC2 reads and host variables


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
    partition come from their tags when set. The /home and /segway-build volumes get
    copy_existing, so what the master held there is copied onto them when they are
    formatted (a blank build volume then keeps an environment built before it)."""
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
        if vol["mount"] in (HOME_MOUNT, BUILD_MOUNT):
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


# ---------------------------------------------------------------- compute nodes' names


def names_tag_number(key: str) -> int:
    """N of a segway:names:N tag key; 0 for any other key."""
    number = key.removeprefix(NAMES_TAG_PREFIX)
    if key.startswith(NAMES_TAG_PREFIX) and number.isdigit() and int(number) > 0:
        return int(number)
    return 0


def node_number(name: str) -> int:
    """NNN of nodeNNN; 0 for any other name."""
    return int(name[4:]) if NODE_NAME_RE.match(name) else 0


def decode_node_names(tags: Mapping[str, str]) -> dict[str, str]:
    """{instance id: node name} as a master's segway:names:N tags record it (the values
    in the order of N). A word that is not i-<id>=nodeNNN is skipped with a warning; an id
    recorded twice keeps its first name."""
    names: dict[str, str] = {}
    for key in sorted((k for k in tags if names_tag_number(k)), key=names_tag_number):
        for word in str(tags[key]).split():
            instance_id, sep, node = word.partition("=")
            if not sep or not INSTANCE_ID_RE.match(instance_id) or not NODE_NAME_RE.match(node):
                LOG.warning("tag %s: %r is not i-<id>=nodeNNN; ignored", key, word)
                continue
            names.setdefault(instance_id, node)
    return names


def encode_node_names(names: Mapping[str, str]) -> dict[str, str]:
    """The master's segway:names:N tags that record names ({instance id: node name}): the
    i-<id>=nodeNNN pairs in node order, space-separated, as many to a value as fit in
    TAG_VALUE_MAX characters, keys numbered from 1 ({} for no names). Ec2ClusterError for
    a pair that is not i-<id>=nodeNNN, or names needing more than NAMES_TAGS_MAX tags."""
    values: list[str] = []
    for instance_id, node in sorted(names.items(), key=lambda kv: (node_number(kv[1]), kv)):
        if not INSTANCE_ID_RE.match(instance_id) or not NODE_NAME_RE.match(node):
            raise Ec2ClusterError(f"cannot record the node name {instance_id}={node}")
        pair = f"{instance_id}={node}"
        if values and len(values[-1]) + 1 + len(pair) <= TAG_VALUE_MAX:
            values[-1] += " " + pair
        else:
            values.append(pair)
    if len(values) > NAMES_TAGS_MAX:
        raise Ec2ClusterError(
            f"the names of {len(names)} compute nodes need {len(values)} tags on the master, "
            f"more than the {NAMES_TAGS_MAX} it may hold (at most {MAX_EC2_COMPUTE_COUNT} "
            "compute nodes per cluster)"
        )
    return {f"{NAMES_TAG_PREFIX}{n}": value for n, value in enumerate(values, start=1)}


def instance_fields(inst: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(id, tags) of an instance as EC2 describes it (InstanceId, Tags), as
    amazon.aws.ec2_instance_info returns it (instance_id, tags) or as plain_instance
    returns it (id, tags)."""
    if "InstanceId" in inst:
        return str(inst["InstanceId"]), tag_dict(inst.get("Tags"))
    return str(inst.get("instance_id") or inst.get("id") or ""), dict(inst.get("tags") or {})


def node_names(instances: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{instance id: node name} of the instances that have a name (any of instance_fields'
    shapes, of one cluster or several). A master's name is its segway:node tag (master);
    a compute node's is the one its cluster's master records (segway:names:N), else its
    own segway:node tag (a node an older version launched and named)."""
    listed = sorted(instances, key=launched_at)
    recorded: dict[str, dict[str, str]] = {}
    for inst in listed:
        tags = instance_fields(inst)[1]
        if tags.get(ROLE_TAG) == "master":
            mapping = recorded.setdefault(tags.get(CLUSTER_TAG, ""), {})
            for named_id, node in decode_node_names(tags).items():
                mapping.setdefault(named_id, node)
    names: dict[str, str] = {}
    for inst in listed:
        instance_id, tags = instance_fields(inst)
        name = tags.get(NODE_TAG, "")
        if tags.get(ROLE_TAG) == "compute":
            name = recorded.get(tags.get(CLUSTER_TAG, ""), {}).get(instance_id) or name
        if name:
            names[instance_id] = name
    return names


def launched_at(inst: Mapping[str, Any]) -> str:
    """An instance's launch time, in any of instance_fields' shapes ('' when unknown)."""
    return str(inst.get("LaunchTime") or inst.get("launch_time") or "")


def group_name(cluster: str) -> str:
    """Ansible group of one cluster: cluster_<name>, hyphens made underscores."""
    return "cluster_" + "".join(c if c.isalnum() or c == "_" else "_" for c in cluster)


def known_hosts_file(cluster: str) -> str:
    """Per-cluster known_hosts: new instances are trusted on first use, then checked.

    Expanded here, on the controller, with HOME as teardown expands it when it deletes
    the file: ssh itself would expand ~ with the account's home from passwd, which is
    another directory when HOME is set elsewhere (found on the EC2 twin)."""
    return os.path.expanduser(f"~/.ssh/segway_{cluster}_known_hosts")


def ssh_options(cluster: str, quote: Callable[[str], str] = shlex.quote) -> str:
    known = quote("UserKnownHostsFile=" + known_hosts_file(cluster))
    return f"-o StrictHostKeyChecking=accept-new -o {known}"


def proxy_args(cluster: str, master_address: str, access: HostAccess) -> str:
    """SSH options reaching a private-only node through the master.

    Two readers parse this: Ansible splits ansible_ssh_common_args like a shell (shlex),
    then ssh expands %-tokens in the ProxyCommand and runs it with /bin/sh. So the key
    path and user@host are shell-quoted and their % doubled (one argument each, whatever
    they hold), and the whole ProxyCommand option is quoted once more for Ansible."""

    def arg(value: str) -> str:
        return shlex.quote(value).replace("%", "%%")

    key = f" -i {arg(access.ssh_private_key_file)}" if access.ssh_private_key_file else ""
    target = arg(f"{access.ssh_user}@{master_address}")
    jump = f"ssh -W %h:%p -q{key} {ssh_options(cluster, arg)} {target}"
    return f"{ssh_options(cluster)} -o {shlex.quote('ProxyCommand=' + jump)}"


def node_sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "master" else 1, name)


def build_inventory(
    instances: Sequence[Mapping[str, Any]],
    types: Mapping[str, Mapping[str, int]],
    volumes: Mapping[str, Sequence[Mapping[str, Any]]],
    access: HostAccess,
) -> dict[str, Any]:
    """Ansible's --list JSON for the instances (no AWS calls here).

    Groups master and compute hold one cluster only: with no cluster chosen and nodes
    of several clusters, an Ec2ClusterError names them; with access.all_clusters, master and
    compute stay empty and each cluster's hosts are in its cluster_<name> group."""
    # One node per (cluster, name); an unnamed or duplicated instance is reported, not
    # guessed. Compute nodes' names are on their master (node_names).
    names = node_names(instances)
    nodes: dict[tuple[str, str], Mapping[str, Any]] = {}
    for inst in sorted(instances, key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"])):
        tags = tag_dict(inst.get("Tags"))
        cluster, role = tags.get(CLUSTER_TAG), tags.get(ROLE_TAG)
        node = names.get(inst["InstanceId"])
        if access.cluster and cluster != access.cluster:
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
                "instance %s of cluster %s has no node name yet (segway:role=%s; no name in a "
                "running master's segway:names tags nor a segway:node tag); run launch.yml "
                "again to name it",
                inst["InstanceId"],
                cluster,
                role,
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

    clusters = sorted({cluster for cluster, _node in nodes})
    if not access.cluster and not access.all_clusters and len(clusters) > 1:
        raise Ec2ClusterError(
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
        name = node if access.cluster else f"{cluster}-{node}"
        role = node_role(inst)
        hostvars[name] = host_vars(
            inst, node=node, master=masters.get(cluster), types=types, access=access
        )
        if role == "master" and inst["InstanceId"] in volumes:
            hostvars[name]["segway_volumes"] = list(volumes[inst["InstanceId"]])
            hostvars[name]["ebs_mount_volumes"] = mount_entries(volumes[inst["InstanceId"]])
        if not access.all_clusters:
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
    access: HostAccess,
) -> dict[str, Any]:
    """Connection and description variables of one node."""
    tags = tag_dict(inst.get("Tags"))
    cluster, role = tags[CLUSTER_TAG], tags[ROLE_TAG]
    private_ip = inst.get("PrivateIpAddress")
    public_ip = inst.get("PublicIpAddress")
    master_public = (master or {}).get("PublicIpAddress")
    if access.ssh_address == "private":
        address, ssh_args = private_ip, ssh_options(cluster)
    elif public_ip or role == "master" or not master_public:
        address, ssh_args = public_ip or private_ip, ssh_options(cluster)
    else:
        address, ssh_args = private_ip, proxy_args(cluster, master_public, access)
    itype = inst.get("InstanceType", "")
    shape = types.get(itype, {})
    result: dict[str, Any] = {
        "ansible_host": address,
        "ansible_user": access.ssh_user,
        "ansible_become": access.ssh_user != "root",
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
    if access.ssh_private_key_file:
        result["ansible_ssh_private_key_file"] = access.ssh_private_key_file
    return result


def fetch_offerings(ec2: Any, names: Sequence[str]) -> dict[str, list[str]]:
    """Per availability zone, the instance types among names it offers."""
    filters = [{"Name": "instance-type", "Values": list(names)}]
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


def plain_instance(inst: Mapping[str, Any], node: str | None = None) -> dict[str, Any]:
    """An instance with the fields launch and teardown use, every key present. node: its
    name (node_names, which reads a compute node's on its master); None for its own
    segway:node tag."""
    tags = tag_dict(inst.get("Tags"))
    placement = inst.get("Placement", {})
    return {
        "id": inst["InstanceId"],
        "node": tags.get(NODE_TAG, "") if node is None else node,
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


def fetch_key_pairs(ec2: Any) -> list[dict[str, Any]]:
    """Every key pair of the region (DescribeKeyPairs has no pages), with its tags: one
    call for both fetch_owned and fetch_name_clashes."""
    return list(ec2.describe_key_pairs()["KeyPairs"])


def fetch_name_clashes(
    ec2: Any, cluster: str, name: str, key_pairs: Sequence[Mapping[str, Any]] | None = None
) -> list[dict[str, str]]:
    """Key pairs and security groups called name that are not the cluster's own.

    key_pairs: the region's key pairs (fetch_key_pairs) when already read."""
    if key_pairs is None:
        key_pairs = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])[
            "KeyPairs"
        ]
    clashes = [
        {"kind": "key pair", "id": k["KeyName"], "vpc_id": ""}
        for k in key_pairs
        if k["KeyName"] == name and tag_dict(k.get("Tags")).get(CLUSTER_TAG) != cluster
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


def fetch_owned(
    ec2: Any,
    cluster: str,
    key_pairs: Sequence[Mapping[str, Any]] | None = None,
    *,
    spot_requests: bool = True,
) -> dict[str, Any]:
    """Everything tagged as the cluster's, and the spot requests of its instances.

    Each instance, volume, launch template and security group carries its tags and its
    owner (the segway:owner tag, empty when unset); resources lists all of them and the
    key pairs as {kind, id, name, owner} and owners the distinct owners, for the owner
    check (roles/ec2_cluster/tasks/owner.yml). lock is the launch lock template ({} when
    none); data_volumes the volumes attached to the cluster's instances that outlive
    them (also those the user attached by id); security_groups[].users what else uses
    each group (see fetch_group_users). key_pairs: the region's key pairs
    (fetch_key_pairs) when already read. spot_requests=False leaves spot_request_ids
    empty without reading them (launch does not cancel spot requests; teardown does).

    The launch lock's template is listed without reading its versions (it launches
    nothing and names no placement group)."""
    tagged = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]
    described = [
        i
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[*tagged, {"Name": "instance-state-name", "Values": LIVE_STATES}]
        )
        for r in page["Reservations"]
        for i in r["Instances"]
    ]
    names = node_names(described)
    instances = [plain_instance(i, names.get(i["InstanceId"], "")) for i in described]
    open_states = {"Name": "state", "Values": ["open", "active"]}
    spot_ids = (
        {
            s["SpotInstanceRequestId"]
            for page in ec2.get_paginator("describe_spot_instance_requests").paginate(
                Filters=[*tagged, open_states]
            )
            for s in page["SpotInstanceRequests"]
        }
        if spot_requests
        else set()
    )
    if instances and spot_requests:
        for page in ec2.get_paginator("describe_spot_instance_requests").paginate(
            Filters=[{"Name": "instance-id", "Values": [i["id"] for i in instances]}, open_states]
        ):
            spot_ids.update(s["SpotInstanceRequestId"] for s in page["SpotInstanceRequests"])
    templates = []
    for page in ec2.get_paginator("describe_launch_templates").paginate(Filters=tagged):
        for tmpl in page["LaunchTemplates"]:
            is_lock = tmpl["LaunchTemplateName"] == lock_name(cluster)
            latest = (
                []
                if is_lock
                else ec2.describe_launch_template_versions(
                    LaunchTemplateId=tmpl["LaunchTemplateId"], Versions=["$Latest"]
                )["LaunchTemplateVersions"]
            )
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
                    "lock": is_lock,
                }
            )
    groups = [
        {
            "id": g["GroupId"],
            "name": g["GroupName"],
            "vpc_id": g.get("VpcId", ""),
            "tags": tag_dict(g.get("Tags")),
            "owner": tag_dict(g.get("Tags")).get(OWNER_TAG, ""),
            # Its inbound rules, for launch's segway.cluster.ec2_cluster_security_group.
            "ip_permissions": g.get("IpPermissions", []),
        }
        for page in ec2.get_paginator("describe_security_groups").paginate(Filters=tagged)
        for g in page["SecurityGroups"]
    ]
    group_users = fetch_group_users(ec2, cluster, [g["id"] for g in groups])
    for group in groups:
        group["users"] = group_users[group["id"]]
    if key_pairs is None:
        key_pairs = ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]
    key_details = [
        {"name": k["KeyName"], "owner": tag_dict(k.get("Tags")).get(OWNER_TAG, "")}
        for k in key_pairs
        if tag_dict(k.get("Tags")).get(CLUSTER_TAG) == cluster
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
    if tags.get(CLUSTER_TAG) and (tags.get(VOLUME_TAG) == "segway-build" or mount == BUILD_MOUNT):
        return f"({where}: Segway and GMTK as built, so the next launch skips the build)"
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


# ---------------------------------------------------------------- what launch and teardown read


def collect_inventory(ec2: Any, access: HostAccess) -> dict[str, Any]:
    """Ansible's --list JSON of the running instances (of access.cluster, or of every
    cluster): read from EC2, then built by build_inventory."""
    instances = fetch_instances(ec2, access.cluster)
    types = fetch_instance_types(ec2, (i.get("InstanceType", "") for i in instances))
    master_ids = [i["InstanceId"] for i in instances if node_role(i) == "master"]
    volumes = fetch_master_volumes(ec2, master_ids)
    return build_inventory(instances, types, volumes, access)


def inventory_hosts(inventory: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each host of an inventory (build_inventory) as add_host takes it: its name, its
    groups (sorted) and all its host variables."""
    groups: dict[str, list[str]] = {}
    for group, members in sorted(inventory.items()):
        if group in ("_meta", "all"):
            continue
        for host in members.get("hosts", []):
            groups.setdefault(host, []).append(group)
    return [
        {"name": name, "groups": groups.get(name, []), "vars": dict(hostvars)}
        for name, hostvars in inventory["_meta"]["hostvars"].items()
    ]


def fetch_snapshots(ec2: Any, snapshot_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The snapshots among snapshot_ids that exist (a missing one is left out, not an
    error), each as {id, size} (size in GiB)."""
    if not snapshot_ids:
        return []
    return [
        {"id": s["SnapshotId"], "size": s.get("VolumeSize")}
        for page in ec2.get_paginator("describe_snapshots").paginate(
            Filters=[{"Name": "snapshot-id", "Values": list(snapshot_ids)}]
        )
        for s in page["Snapshots"]
    ]


def offering_zones(offerings: Mapping[str, Sequence[str]], types: Iterable[str]) -> list[str]:
    """The zones (of fetch_offerings) that offer every one of types, in zone order."""
    wanted = set(types)
    return [zone for zone, offered in offerings.items() if wanted <= set(offered)]


def check_volumes(
    plan: Sequence[Mapping[str, Any]],
    *,
    cluster: str,
    region: str,
    given: Sequence[Mapping[str, Any]],
    owned_volumes: Sequence[Mapping[str, Any]],
    name_clashes: Sequence[Mapping[str, Any]],
    snapshots: Sequence[Mapping[str, Any]],
    master_id: str,
) -> dict[str, Any]:
    """What stands in the way of the planned volumes (the ec2_volume_plan filter's
    volumes), each list empty when nothing does; launch stops on the first that is not.

    given: the volumes given by id that exist (fetch_volumes); owned_volumes: the
    cluster's own (fetch_owned's cluster_volumes); name_clashes: volumes named like one
    launch would create that are not the cluster's (fetch_volume_name_clashes);
    snapshots: those of fetch_snapshots; master_id: the cluster's running master ('' when
    none). found is every volume the cluster will use that exists, zones their zones."""
    created = [v for v in plan if v.get("create")]
    created_names = [v["name"] for v in created]
    # The cluster's own volumes are found by its tags only (segway:cluster +
    # segway:volume), never by Name: a volume someone else named alike is never adopted.
    found = [*given] + [
        v for v in owned_volumes if v.get("tags", {}).get(VOLUME_TAG) in created_names
    ]
    owned_names = [v.get("tags", {}).get(VOLUME_TAG) for v in owned_volumes]
    to_create = [v["tag_name"] for v in created if v["name"] not in owned_names]
    clashing = [f"{c['id']} is named {c['name']}" for c in name_clashes if c["name"] in to_create]
    # A volume is another cluster's by either tag; one carrying both is named twice, as
    # each tag says.
    foreign = [
        v
        for tag in (CLUSTER_TAG, ATTACHED_TAG)
        for v in given
        if tag in v.get("tags", {}) and v["tags"][tag] != cluster
    ]
    foreign_owners: list[str] = []
    for vol in foreign:
        for key, value in vol["tags"].items():
            if key in (CLUSTER_TAG, ATTACHED_TAG) and value not in foreign_owners:
                foreign_owners.append(value)
    found_ids = [v["id"] for v in found]
    missing = [v["id"] for v in plan if not v.get("create") and v["id"] not in found_ids]
    busy = [
        f"{v['id']} is attached to {a['instance_id']}"
        for v in found
        for a in v.get("attachments", [])
        if a["instance_id"] not in ("", master_id)
    ]
    sizes = {s["id"]: s["size"] for s in snapshots}
    snapshot_problems = []
    for vol in plan:
        if "snapshot" not in vol:
            continue
        if vol["snapshot"] not in sizes:
            snapshot_problems.append(f"snapshot {vol['snapshot']} not found in {region}")
        elif "size" in vol and whole(vol["size"]) < whole(sizes[vol["snapshot"]]):
            snapshot_problems.append(
                f"size {vol['size']} GiB is smaller than snapshot {vol['snapshot']} "
                f"({sizes[vol['snapshot']]} GiB)"
            )
    return {
        "found": found,
        "clashing": clashing,
        "foreign": [v["id"] for v in foreign],
        "foreign_owners": foreign_owners,
        "missing": missing,
        "busy": busy,
        "snapshot_problems": snapshot_problems,
        "zones": sorted({v["zone"] for v in found}),
        "placed": [f"{v['id']} in {v['zone']}" for v in found],
    }


def whole(value: Any) -> int:
    """value as a whole number, 0 when it is none (as Jinja's int filter reads it)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def choose_subnet(
    default_subnets: Sequence[Mapping[str, Any]],
    *,
    wanted_zone: str,
    offering_zones: Sequence[str],
    given: Mapping[str, Any] | None = None,
    master: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The subnet the cluster runs in, as {subnet_id, vpc_id, availability_zone, ...}: the
    given one (subnet_id), else the running master's (plain_instance), else the default
    VPC's (amazon.aws.ec2_vpc_subnet_info's subnets) in wanted_zone ('' for any), the
    first by zone name that offers every instance type (offering_zones), or the first at
    all. {} when there is none."""
    if given:
        return dict(given)
    if master and "subnet_id" in master:
        return {
            "subnet_id": master["subnet_id"],
            "vpc_id": master.get("vpc_id", ""),
            "availability_zone": master.get("zone", ""),
        }
    candidates = sorted(
        (s for s in default_subnets if not wanted_zone or s["availability_zone"] == wanted_zone),
        key=lambda s: str(s["availability_zone"]).lower(),
    )
    offered = [s for s in candidates if s["availability_zone"] in offering_zones]
    return dict((offered + candidates)[0]) if candidates else {}


def name_clash_labels(
    clashes: Sequence[Mapping[str, Any]], vpc_id: str, imports_key: bool
) -> list[str]:
    """The clashes (fetch_name_clashes) launch would take over, as "<kind> <id>": a
    security group only in the cluster's VPC (names are per VPC), a key pair only when
    launch imports one under that name."""
    groups = [c for c in clashes if c["kind"] == "security group" and c["vpc_id"] == vpc_id]
    keys = [c for c in clashes if c["kind"] == "key pair"] if imports_key else []
    return [f"{c['kind']} {c['id']}" for c in [*groups, *keys]]


def owner_check(
    resources: Sequence[Mapping[str, Any]], caller_arn: str, cluster: str = ""
) -> dict[str, Any]:
    """The resources (fetch_owned's resources) another identity owns: foreign, their
    distinct owners in order, and each as "<kind> <id>" (labels). A resource without an
    owner (made by an older version) counts as the caller's.

    The cluster's own autoscaler (its master, with the instance profile
    segway-<cluster>-autoscale: an assumed-role ARN of that role) acts for the cluster's
    owner when the cluster has exactly one: caller is then that owner, whose ARN what it
    creates is tagged with. Anyone else is the caller they are."""
    acting = caller_arn
    if cluster and autoscale_caller(caller_arn, cluster):
        tagged = {r["owner"] for r in resources if r.get("owner")}
        if len(tagged) == 1:
            acting = tagged.pop()
    foreign = [r for r in resources if r.get("owner") and r["owner"] != acting]
    owners: list[str] = []
    for res in foreign:
        if res["owner"] not in owners:
            owners.append(res["owner"])
    return {
        "caller": acting,
        "foreign": foreign,
        "owners": owners,
        "labels": [f"{r['kind']} {r['id']}" for r in foreign],
    }


def autoscale_caller(caller_arn: str, cluster: str) -> bool:
    """Whether caller_arn is a session of the cluster's autoscaler role (STS's ARN of an
    instance profile's credentials: assumed-role/<role>/<instance id>)."""
    return bool(
        re.fullmatch(
            rf"arn:aws[a-z-]*:sts::[0-9]{{12}}:assumed-role/{re.escape(autoscale_iam_name(cluster))}/[^/]+",
            caller_arn,
        )
    )


def new_node_names(
    instances: Sequence[Mapping[str, Any]], template_ids: Mapping[str, str]
) -> list[dict[str, str]]:
    """Names for the compute instances that have none yet, among a cluster's instances
    (amazon.aws.ec2_instance_info's; its master's tags record the names, node_names): the
    lowest free node numbers, oldest instance first, and the market each was launched on
    (spot when its launch template is one of the -spot templates in template_ids, name ->
    id)."""
    named = node_names(instances)
    used = set(named.values())
    unnamed = sorted(
        (
            i
            for i in instances
            if instance_fields(i)[1].get(ROLE_TAG) == "compute"
            and instance_fields(i)[0] not in named
        ),
        key=lambda i: (launched_at(i), whole(i.get("ami_launch_index"))),
    )
    free = (f"node{n:03d}" for n in range(1, 10000) if f"node{n:03d}" not in used)
    spot_ids = {tid for name, tid in template_ids.items() if name.endswith("-spot")}
    return [
        {
            "id": instance_fields(inst)[0],
            "name": name,
            "market": (
                "spot"
                if instance_fields(inst)[1].get("aws:ec2launchtemplate:id", "") in spot_ids
                else "on-demand"
            ),
        }
        for inst, name in zip(unnamed, free, strict=False)
    ]


def node_names_update(
    instances: Sequence[Mapping[str, Any]], template_ids: Mapping[str, str]
) -> dict[str, Any]:
    """What launch records on the master once its fleet has run, from the cluster's live
    instances (amazon.aws.ec2_instance_info's, the master among them):

    new: the names new_node_names gives the compute nodes that have none; master_id: the
    master (the oldest, '' when there is none); tags: the segway:names:N tags recording
    every live compute node's name (new ones included, those of instances gone left
    out); stale: the master's segway:names:N tags that tags no longer uses, each with its
    value now (segway.cluster.ec2_cluster_tags's remove deletes them only while they hold it).
    When new is empty the master is left as it is (tags and stale empty). Ec2ClusterError when there
    are names to record and no master, or too many (encode_node_names)."""
    new = new_node_names(instances, template_ids)
    if not new:
        return {"new": [], "master_id": "", "tags": {}, "stale": {}}
    masters = sorted(
        (i for i in instances if instance_fields(i)[1].get(ROLE_TAG) == "master"),
        key=launched_at,
    )
    if not masters:
        raise Ec2ClusterError(
            f"no master to record the names of {len(new)} new compute nodes on "
            f"({', '.join(n['id'] for n in new)})"
        )
    master_id, master_tags = instance_fields(masters[0])
    computes = {
        instance_fields(i)[0] for i in instances if instance_fields(i)[1].get(ROLE_TAG) == "compute"
    }
    names = {i: name for i, name in node_names(instances).items() if i in computes}
    names.update({n["id"]: n["name"] for n in new})
    tags = encode_node_names(names)
    stale = {
        k: master_tags[k]
        for k in sorted(master_tags, key=names_tag_number)
        if names_tag_number(k) and k not in tags
    }
    return {"new": new, "master_id": master_id, "tags": tags, "stale": stale}


def free_node_names(
    existing: Sequence[Mapping[str, Any]], count: Any, cluster: str
) -> list[dict[str, str]]:
    """Tags of their own for count new compute nodes (for ec2_instant_fleet's
    instance_tags; roles/ec2_cluster records names on the master instead): the lowest node
    numbers no existing compute node (plain_instance's, with its node name) holds, in
    order, each as {segway:node: nodeNNN, Name: <cluster>-nodeNNN}."""
    used = {str(i.get("node") or "") for i in existing} - {""}
    free = (f"node{n:03d}" for n in range(1, 10000) if f"node{n:03d}" not in used)
    wanted = max(whole(count), 0)
    return [{NODE_TAG: name, "Name": f"{cluster}-{name}"} for name in islice(free, wanted)]


def pool_error_text(error: Mapping[str, Any]) -> str:
    """One per-pool error of segway.cluster.ec2_instant_fleet as a line for the user."""
    pool = error.get("instance_type") or "every type"
    where = f" in {error['subnet_id']}" if error.get("subnet_id") else ""
    message = str(error.get("message") or "").strip()
    return f"{pool}{where} ({error.get('lifecycle') or '?'}): {error.get('code') or 'error'}" + (
        f": {message}" if message else ""
    )


def with_placement_groups(
    teardown: Mapping[str, Any], placement_groups: Sequence[Mapping[str, Any]], cluster: str
) -> dict[str, Any]:
    """teardown (teardown_plan) with the cluster's placement groups among placement_groups
    (amazon.aws.ec2_placement_group_info's, tagged segway:cluster=<cluster>): their names,
    a plan line for each, and empty only when there is none either."""
    names = [g["name"] for g in placement_groups if g.get("tags", {}).get(CLUSTER_TAG) == cluster]
    return {
        **teardown,
        "placement_groups": names,
        "plan": [*teardown["plan"], *(f"delete placement group {n}" for n in names)],
        # Keeping volumes (or a security group still in use) is not a change.
        "empty": bool(teardown["empty"]) and not names,
    }


# ---------------------------------------------------------------- the autoscaler's IAM role

# ec2_cluster_lock's tag on the launch lock (a launch template): the role may create such
# a template, and may never launch from one.
LOCK_RUN_TAG = "segway:lock-run"

# What launch.yml (growing the cluster, as recorded at moto's proxy by
# tests/ec2/test_ec2_launch_safety.py), remove_nodes.yml (terminating nodes) and the EC2
# inventory read. EC2's Describe calls take no resource-level conditions.
AUTOSCALE_DESCRIBE_ACTIONS = (
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeIamInstanceProfileAssociations",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceAttribute",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances",
    "ec2:DescribeKeyPairs",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribePlacementGroups",
    "ec2:DescribeSecurityGroupRules",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSpotInstanceRequests",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVolumes",
    "ec2:DescribeVpcs",
)

# What a launch from a template creates or uses, besides the template itself.
_LAUNCHED = ("instance", "volume", "network-interface", "spot-instances-request")
_USED = ("subnet", "security-group", "key-pair", "placement-group")


def autoscale_iam_name(cluster: str) -> str:
    """The name of the autoscaler's IAM role, its instance profile and its inline policy."""
    return f"segway-{cluster}-autoscale"


def autoscale_policy(cluster: str, region: str, account: str) -> dict[str, Any]:
    """The least the autoscaler on the master needs, as an IAM policy document.

    It may read EC2 (Describe calls take no conditions); launch instances only from a
    launch template that carries segway:cluster=<cluster> and is not a launch lock (it
    cannot pass a role either: no iam:PassRole, so never from the master's own template,
    which holds this profile); tag only at launch or what carries the cluster's tag;
    terminate only the cluster's compute nodes; create and delete only the cluster's
    launch lock. No IAM action at all: the role cannot widen itself.
    """
    if not CLUSTER_RE.match(cluster):
        raise ValueError(f"cluster name {cluster!r} does not match {CLUSTER_RE.pattern}")
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", region):
        raise ValueError(f"region {region!r} is not an AWS region name")
    if not re.fullmatch(r"[0-9]{12}", account):
        raise ValueError(f"account {account!r} is not a 12-digit AWS account id")
    arn = f"arn:aws:ec2:{region}:{account}"
    template = f"{arn}:launch-template/*"
    the_cluster = {f"aws:ResourceTag/{CLUSTER_TAG}": cluster}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadEC2",
                "Effect": "Allow",
                "Action": list(AUTOSCALE_DESCRIBE_ACTIONS),
                "Resource": "*",
            },
            {
                "Sid": "LaunchOnlyFromTheClustersTemplates",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": template,
                "Condition": {
                    "StringEquals": the_cluster,
                    "Null": {f"aws:ResourceTag/{LOCK_RUN_TAG}": "true"},
                },
            },
            {
                # The compute nodes come from one instant fleet (CreateFleet) over the
                # cluster's compute template; the fleet is tagged with the cluster at
                # creation. What the fleet launches is RunInstances on the caller's
                # permissions (the statements above and below).
                "Sid": "LaunchFleetsTaggedWithTheCluster",
                "Effect": "Allow",
                "Action": "ec2:CreateFleet",
                "Resource": f"{arn}:fleet/*",
                "Condition": {"StringEquals": {f"aws:RequestTag/{CLUSTER_TAG}": cluster}},
            },
            {
                "Sid": "FleetsOnlyFromTheClustersTemplates",
                "Effect": "Allow",
                "Action": "ec2:CreateFleet",
                "Resource": template,
                "Condition": {
                    "StringEquals": the_cluster,
                    "Null": {f"aws:ResourceTag/{LOCK_RUN_TAG}": "true"},
                },
            },
            {
                # The rest of what a fleet names (its subnet, image, ...), in this
                # region; the two statements above hold it to the cluster's template.
                "Sid": "WhatAFleetUses",
                "Effect": "Allow",
                "Action": "ec2:CreateFleet",
                "Resource": [
                    *(f"{arn}:{kind}/*" for kind in _LAUNCHED + _USED),
                    f"arn:aws:ec2:{region}::image/*",
                ],
                "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
            },
            {
                "Sid": "WhatATemplateLaunches",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": [
                    *(f"{arn}:{kind}/*" for kind in _LAUNCHED + _USED),
                    f"arn:aws:ec2:{region}::image/*",
                ],
                "Condition": {"ArnLike": {"ec2:LaunchTemplate": template}},
            },
            {
                "Sid": "TagWhatItCreates",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": [*(f"{arn}:{kind}/*" for kind in (*_LAUNCHED, "fleet")), template],
                "Condition": {
                    "StringEquals": {
                        "ec2:CreateAction": ["RunInstances", "CreateLaunchTemplate", "CreateFleet"]
                    }
                },
            },
            {
                # Naming new nodes (their names are tags of the master; a launch drops
                # the master's name tags no longer used); keeping IMDSv2 and the
                # cluster's security group on them (ec2_instance sets the group of a
                # node it launched, in place).
                "Sid": "KeepTheClustersInstances",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateTags",
                    "ec2:DeleteTags",
                    "ec2:ModifyInstanceAttribute",
                    "ec2:ModifyInstanceMetadataOptions",
                ],
                "Resource": [f"{arn}:instance/*", f"{arn}:security-group/*"],
                "Condition": {"StringEquals": the_cluster},
            },
            {
                "Sid": "TerminateOnlyTheClustersComputeNodes",
                "Effect": "Allow",
                "Action": "ec2:TerminateInstances",
                "Resource": f"{arn}:instance/*",
                "Condition": {
                    "StringEquals": {**the_cluster, f"aws:ResourceTag/{ROLE_TAG}": "compute"}
                },
            },
            {
                "Sid": "TakeTheLaunchLock",
                "Effect": "Allow",
                "Action": "ec2:CreateLaunchTemplate",
                "Resource": template,
                "Condition": {
                    "StringEquals": {f"aws:RequestTag/{CLUSTER_TAG}": cluster},
                    "Null": {f"aws:RequestTag/{LOCK_RUN_TAG}": "false"},
                },
            },
            {
                "Sid": "ReleaseTheLaunchLock",
                "Effect": "Allow",
                "Action": "ec2:DeleteLaunchTemplate",
                "Resource": template,
                "Condition": {
                    "StringEquals": the_cluster,
                    "Null": {f"aws:ResourceTag/{LOCK_RUN_TAG}": "false"},
                },
            },
        ],
    }


def with_autoscale_roles(
    teardown: Mapping[str, Any], roles: Sequence[Mapping[str, Any]], cluster: str
) -> dict[str, Any]:
    """teardown (teardown_plan) with the autoscaler's IAM role among roles
    (amazon.aws.iam_role_info's, by its name): only a role tagged segway:cluster=<cluster>
    is the cluster's. Adds iam_roles (names), a plan line for each, and empty only when
    there is none either."""
    names = [
        r["role_name"]
        for r in roles
        if r.get("role_name") == autoscale_iam_name(cluster)
        and (r.get("tags") or {}).get(CLUSTER_TAG) == cluster
    ]
    return {
        **teardown,
        "iam_roles": names,
        "plan": [
            *teardown["plan"],
            *(f"delete IAM role and instance profile {n} (the autoscaler's)" for n in names),
        ],
        "empty": bool(teardown["empty"]) and not names,
    }
