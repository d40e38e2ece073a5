#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ec2_cluster_volumes: the cluster's volumes on its master."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_cluster_volumes
short_description: Create, find by tags and attach a cluster's EBS volumes to its master
version_added: 0.1.0
description:
  - Brings the volumes that M(segway.cluster.ec2_cluster_volumes) is given (the plan of the
    C(segway.cluster.ec2_volume_plan) filter) onto the cluster's master instance.
  - A volume launch creates is found B(only) by the cluster's own tags
    (C(segway:cluster) and C(segway:volume)), never by its C(Name), so a volume someone else
    named alike is never adopted. A missing one is created encrypted, in O(zone), with every
    tag given at creation.
  - A volume given by id is attached as it is; one tagged as another cluster's
    (C(segway:cluster) or C(segway:attached-to)) is refused.
  - The device name of each attachment is chosen at attach time among the names the master
    does not use (C(/dev/sdf) ... C(/dev/sdp)); a name EC2 reports as in use is skipped.
    After attaching, the volume id EC2 reports on that device must be the expected one.
  - Each volume is tagged with its mount point, whether it is shared, and whether it may be
    formatted (C(segway:format), V(if_blank) only for volumes created empty here), so the
    dynamic inventory hands the mount to roles/ebs_mount.
  - Nothing is ever detached, deleted or formatted by this module.
options:
  cluster:
    description: The cluster's name (tag C(segway:cluster)).
    type: str
    required: true
  instance_id:
    description: The master's instance id.
    type: str
    required: true
  zone:
    description: Availability zone new volumes are created in (the master's).
    type: str
    required: true
  volumes:
    description:
      - The planned volumes, each with C(name), C(tag_name), C(mount), C(shared), C(type),
        C(create) and C(format), and C(id) (create=false) or C(size)/C(snapshot), and optional
        C(iops), C(throughput), C(fstype), C(partition).
    type: list
    elements: dict
    required: true
  tags:
    description: Tags every volume created here gets (C(segway:cluster), C(segway:owner)).
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for a volume to become available or attached.
    type: int
    default: 300
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Reports the volumes it would create and attach, changing nothing.
  diff_mode:
    support: full
    details: Shows each volume's id and device before and after.
  platform:
    platforms: all
    details: It only calls the EC2 API, usually from the controller (C(localhost)).
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Attach the cluster's volumes to the master
  segway.cluster.ec2_cluster_volumes:
    cluster: segway
    instance_id: i-0123456789abcdef0
    zone: us-east-1a
    volumes: "{{ [] | segway.cluster.ec2_volume_plan('segway', 50) | json_query('volumes') }}"
    tags:
      "segway:cluster": segway
      "segway:owner": arn:aws:iam::123456789012:user/alice
"""

RETURN = r"""
volumes:
  description: Each volume as it is attached (in check mode, as it would be).
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: The volume's name in the cluster., type: str, sample: home}
    id: {description: Its id (empty in check mode for a volume to create)., type: str}
    device: {description: Device name on the master., type: str, sample: /dev/sdf}
    mount: {description: Mount point., type: str, sample: /home}
    created: {description: Whether it was created in this run., type: bool}
    attached: {description: Whether it was attached in this run., type: bool}
"""

import contextlib  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.cluster_volumes import (  # noqa: E402
    DEVICES,
    free_device,
)
from ansible_collections.segway.cluster.plugins.module_utils.ec2_cluster import (  # noqa: E402
    tag_dict,
)
from ansible_collections.segway.cluster.plugins.module_utils.ec2_tags import (  # noqa: E402
    tag_list,
)

CLUSTER_TAG = "segway:cluster"
ATTACHED_TAG = "segway:attached-to"
VOLUME_TAG = "segway:volume"


def wanted_tags(vol: dict[str, Any], cluster: str) -> dict[str, str]:
    """The tags that describe how the cluster uses the volume."""
    tags = {
        "segway:mount": vol["mount"],
        "segway:shared": "true" if vol.get("shared", True) else "false",
        "segway:format": vol.get("format", "never"),
    }
    if vol.get("fstype"):
        tags["segway:fstype"] = vol["fstype"]
    if vol.get("partition"):
        tags["segway:partition"] = str(vol["partition"])
    if not vol.get("create"):
        tags[ATTACHED_TAG] = cluster
    return tags


class Volumes:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.cluster = module.params["cluster"]
        self.instance_id = module.params["instance_id"]
        self.ec2 = module.client("ec2")
        self.changed = False

    def fail(self, msg: str, exc: Exception | None = None) -> None:
        if exc is not None:
            self.module.fail_json_aws(exc, msg=msg)
        self.module.fail_json(msg=msg)

    # ------------------------------------------------------------------ reads

    def instance_devices(self) -> dict[str, str]:
        """Device name -> volume id of every EBS mapping of the master."""
        try:
            reservations = self.ec2.describe_instances(InstanceIds=[self.instance_id])
        except (BotoCoreError, ClientError) as exc:
            self.fail(f"cannot describe the master {self.instance_id}", exc)
        instances = [i for r in reservations["Reservations"] for i in r["Instances"]]
        if not instances:
            self.fail(f"the master {self.instance_id} does not exist")
        return {
            b["DeviceName"]: b.get("Ebs", {}).get("VolumeId", "")
            for b in instances[0].get("BlockDeviceMappings", [])
        }

    def describe(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            pages = self.ec2.get_paginator("describe_volumes").paginate(Filters=filters)
            return [v for page in pages for v in page["Volumes"]]
        except (BotoCoreError, ClientError) as exc:
            self.fail("cannot describe volumes", exc)
        return []

    def owned_by_name(self) -> dict[str, dict[str, Any]]:
        """The cluster's own volumes (by its tags only), by segway:volume name."""
        found = self.describe(
            [
                {"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster]},
                {"Name": "tag-key", "Values": [VOLUME_TAG]},
            ]
        )
        by_name: dict[str, dict[str, Any]] = {}
        for vol in found:
            if vol.get("State") in ("deleting", "deleted", "error"):
                continue
            name = tag_dict(vol.get("Tags"))[VOLUME_TAG]
            if name in by_name:
                self.fail(
                    f"cluster {self.cluster} owns two volumes named {name}: "
                    f"{by_name[name]['VolumeId']} and {vol['VolumeId']}; keep one (retag or "
                    "delete the other) and run launch again"
                )
            by_name[name] = vol
        return by_name

    # ------------------------------------------------------------------ changes

    def create(self, vol: dict[str, Any]) -> dict[str, Any]:
        """CreateVolume, tags at creation; the caller waits for it (wait_all)."""
        tags = {
            **self.params["tags"],
            "Name": vol["tag_name"],
            VOLUME_TAG: vol["name"],
            **wanted_tags(vol, self.cluster),
        }
        request: dict[str, Any] = {
            "AvailabilityZone": self.params["zone"],
            "Encrypted": True,
            "VolumeType": vol.get("type", "gp3"),
            "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(tags)}],
        }
        for key, field in (
            ("size", "Size"),
            ("snapshot", "SnapshotId"),
            ("iops", "Iops"),
            ("throughput", "Throughput"),
        ):
            if vol.get(key):
                request[field] = vol[key]
        try:
            made = self.ec2.create_volume(**request)
        except (BotoCoreError, ClientError) as exc:
            self.fail(f"cannot create volume {vol['tag_name']} ({vol['mount']})", exc)
        self.changed = True
        return {**made, "Tags": tag_list(tags), "Attachments": []}

    def wait_all(self, done: dict[str, Any], what: dict[str, str]) -> None:
        """Wait until done[volume_id](volume) holds for every volume: one DescribeVolumes
        of them all per round, however many there are."""
        deadline = time.monotonic() + self.params["wait_timeout"]
        pending = sorted(done)
        while pending:
            vols = {
                v["VolumeId"]: v for v in self.describe([{"Name": "volume-id", "Values": pending}])
            }
            pending = [i for i in pending if i not in vols or not done[i](vols[i])]
            if not pending:
                return
            if time.monotonic() > deadline:
                first = pending[0]
                state = vols[first].get("State") if first in vols else "gone"
                self.fail(
                    f"volume {first} did not become {what[first]} within "
                    f"{self.params['wait_timeout']} s (state {state})"
                )
            time.sleep(2)

    def attach(self, vol: dict[str, Any], volume_id: str, used: list[str], taken: list[str]) -> str:
        """Attach volume_id to the master on a device neither used (the master's, read
        once) nor taken (this run's); return the device. The caller waits for the
        attachment and checks what EC2 reports on the device (attached)."""
        for _attempt in DEVICES:
            device = free_device(used, taken)
            if device is None:
                break
            try:
                self.ec2.attach_volume(
                    VolumeId=volume_id, InstanceId=self.instance_id, Device=device
                )
            except ClientError as exc:
                message = exc.response.get("Error", {}).get("Message", "")
                if "already in use" in message or "is already in use" in message:
                    taken.append(device)  # someone took it since we looked: next one
                    continue
                self.fail(
                    f"cannot attach volume {volume_id} ({vol['mount']}) to the master "
                    f"{self.instance_id} as {device}",
                    exc,
                )
            except BotoCoreError as exc:
                self.fail(f"cannot attach volume {volume_id}", exc)
            self.changed = True
            taken.append(device)
            return device
        self.fail(
            f"no free device name left on the master {self.instance_id} for volume "
            f"{volume_id} ({vol['mount']}): {', '.join(DEVICES)} are all in use"
        )
        return ""

    def attached(self, attaching: dict[str, tuple[dict[str, Any], str]]) -> None:
        """Wait for every attachment of this run (volume id -> (volume entry, device)),
        then check that EC2 reports each volume on its device of the master."""
        if not attaching:
            return

        def on(device: str) -> Any:
            return lambda v: any(
                a.get("InstanceId") == self.instance_id
                and a.get("Device") == device
                and a.get("State") == "attached"
                for a in v.get("Attachments", [])
            )

        self.wait_all(
            {vid: on(device) for vid, (_vol, device) in attaching.items()},
            {vid: f"attached to {self.instance_id} as {d}" for vid, (_v, d) in attaching.items()},
        )
        devices = self.instance_devices()
        for volume_id, (vol, device) in attaching.items():
            holder = devices.get(device)
            if holder != volume_id:
                self.fail(
                    f"after attaching volume {volume_id} ({vol['mount']}) as {device}, EC2 "
                    f"reports {holder or 'nothing'} on {device} of {self.instance_id}; "
                    "nothing was mounted. Check the master's volumes and run launch again."
                )

    def retag(self, volume: dict[str, Any], wanted: dict[str, str]) -> None:
        have = tag_dict(volume.get("Tags"))
        missing = {k: v for k, v in wanted.items() if have.get(k) != v}
        if not missing:
            return
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.ec2.create_tags(Resources=[volume["VolumeId"]], Tags=tag_list(missing))
        except (BotoCoreError, ClientError) as exc:
            self.fail(f"cannot tag volume {volume['VolumeId']}", exc)

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        """Find or create every volume, then attach the unattached ones: the new volumes
        are waited for together (one DescribeVolumes per round), and so are the
        attachments, then the master's devices are read once to check them."""
        owned = self.owned_by_name()
        given_ids = [v["id"] for v in self.params["volumes"] if not v.get("create")]
        given = (
            {v["VolumeId"]: v for v in self.describe([{"Name": "volume-id", "Values": given_ids}])}
            if given_ids
            else {}
        )
        devices = self.instance_devices()
        on_master = {vid: dev for dev, vid in devices.items()}
        # Every refusal comes before the first change.
        existing = [(vol, self.find(vol, owned, given)) for vol in self.params["volumes"]]
        for vol, volume in existing:
            if volume is not None and volume["VolumeId"] not in on_master:
                self.refuse_attached_elsewhere(vol, volume)
        found: list[tuple[dict[str, Any], dict[str, Any] | None, bool]] = []
        for vol, volume in existing:
            created = volume is None
            made = self.create(vol) if created and not self.module.check_mode else volume
            found.append((vol, made, created))
        new_ids = [v["VolumeId"] for _vol, v, created in found if created and v]
        self.wait_all(
            {i: (lambda v: v.get("State") == "available") for i in new_ids},
            dict.fromkeys(new_ids, "available"),
        )
        taken: list[str] = []
        attaching: dict[str, tuple[dict[str, Any], str]] = {}
        before, after, results = [], [], []
        for vol, volume, created in found:
            result = {"name": vol["name"], "mount": vol["mount"], "created": created}
            if volume is None:  # check mode: a volume to create
                self.changed = True
                results.append({**result, "attached": False, "id": "", "device": ""})
                after.append(f"{vol['name']}: new volume on a free device at {vol['mount']}")
                continue
            volume_id = volume["VolumeId"]
            device = on_master.get(volume_id, "")
            before.append(f"{vol['name']}: {volume_id} {device or 'not attached'}")
            result["attached"] = not device
            if not device:
                if self.module.check_mode:
                    self.changed = True
                    device = free_device(list(devices), taken) or ""
                    taken.append(device)
                else:
                    device = self.attach(vol, volume_id, list(devices), taken)
                    attaching[volume_id] = (vol, device)
            wanted = wanted_tags(vol, self.cluster)
            if vol.get("create"):
                wanted.update({k: str(v) for k, v in self.params["tags"].items()})
            self.retag(volume, wanted)
            after.append(f"{vol['name']}: {volume_id} {device}")
            results.append({**result, "id": volume_id, "device": device})
        self.attached(attaching)
        self.module.exit_json(
            changed=self.changed,
            volumes=results,
            diff={"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"},
        )

    def find(
        self,
        vol: dict[str, Any],
        owned: dict[str, dict[str, Any]],
        given: dict[str, dict[str, Any]],
    ) -> dict[str, Any] | None:
        if vol.get("create"):
            return owned.get(vol["name"])
        volume = given.get(vol["id"])
        if volume is None:
            self.fail(f"volumes: volume {vol['id']} ({vol['mount']}) not found")
        tags = tag_dict(volume.get("Tags"))
        for key in (CLUSTER_TAG, ATTACHED_TAG):
            if tags.get(key, self.cluster) != self.cluster:
                self.fail(
                    f"volumes: volume {vol['id']} ({vol['mount']}) is tagged {key}={tags[key]}: "
                    f"it belongs to cluster {tags[key]}, not {self.cluster}; launch never "
                    "takes another cluster's volume"
                )
        return volume

    def refuse_attached_elsewhere(self, vol: dict[str, Any], volume: dict[str, Any]) -> None:
        for attachment in volume.get("Attachments", []):
            if attachment.get("State") in ("attaching", "attached", "busy"):
                self.fail(
                    f"volumes: volume {volume['VolumeId']} ({vol['mount']}) is attached to "
                    f"{attachment.get('InstanceId')} as {attachment.get('Device')}; detach it "
                    "first (launch attaches volumes to this cluster's master only)"
                )


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "instance_id": {"type": "str", "required": True},
            "zone": {"type": "str", "required": True},
            "volumes": {"type": "list", "elements": "dict", "required": True},
            "tags": {"type": "dict", "default": {}},
            "wait_timeout": {"type": "int", "default": 300},
        },
        supports_check_mode=True,
    )
    Volumes(module).run()


if __name__ == "__main__":
    main()
