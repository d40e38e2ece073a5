#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ebs_device: a volume's device, formatted only if blank."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_device
short_description: Find an attached EBS volume's block device and format it only when blank
version_added: 0.1.0
description:
  - Finds the block device of an attached EBS volume from its O(volume_id) (NVMe on Nitro
    instances, by the C(/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol...) link or the
    disk serial that C(lsblk -o SERIAL) shows), or from the name it was attached under
    (O(device); a Xen instance shows C(/dev/sdf) as C(/dev/xvdf)). Waits up to O(timeout)
    seconds for a just-attached volume to appear, and fails naming the volume when it does not.
  - Tells what is on the device (C(wipefs --no-act), C(blkid --probe), the kernel's
    partitions, zero bytes at the start) and returns the device to mount, its filesystem
    type and UUID. A disk with one partition gives that partition; a whole-disk filesystem
    gives the disk.
  - Creates an O(fstype) filesystem B(only) when the whole disk has no signature of any
    kind, no partition table, no partitions and only zeros in its first MiB, and
    O(format=if_blank). A device with anything on it is never formatted, and the module
    then fails instead of guessing when it cannot be mounted as asked (a partition without
    a filesystem, several partitions, another filesystem type than O(fstype)).
  - Mounting is left to M(ansible.posix.mount) with the returned RV(uuid).
options:
  name:
    description:
      - Name of the volume, used in messages.
    type: str
    required: true
  volume_id:
    description:
      - EBS volume id, V(vol-) followed by 8 or 17 hexadecimal digits.
      - On an instance whose disks show EBS serials (Nitro), the volume id alone decides
        which disk is the volume; a O(device) name that leads to another disk is an error.
    type: str
  device:
    description:
      - Block device the volume was attached as (V(/dev/sdf), also tried as V(/dev/xvdf)),
        or any block device on hosts that are not EC2 instances (V(/dev/vdb), V(/dev/loop3)).
      - One of O(volume_id) and O(device) is required.
    type: path
  fstype:
    description:
      - Filesystem the volume holds, or gets when it is blank.
      - A device holding another filesystem type is an error, never reformatted.
    type: str
    choices: [ext4, xfs]
    default: ext4
  format:
    description:
      - V(if_blank) creates a filesystem on a blank whole disk; V(never) fails on a blank
        disk instead. A device with any signature or partition table is never formatted.
    type: str
    choices: [if_blank, never]
    default: if_blank
  partition:
    description:
      - Number of the partition to use when the disk has several. Without it, a disk with
        exactly one partition uses that one, and a disk with more is an error.
    type: int
  label:
    description:
      - Filesystem label given to a new filesystem (cut to 16 characters for ext4, 12 for
        xfs). Existing filesystems are not relabelled.
    type: str
  timeout:
    description:
      - Seconds to wait for the device (and its partition) to appear.
    type: int
    default: 60
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Finds and probes the device, and reports whether it would be formatted.
  diff_mode:
    support: full
    details: The diff shows what the device holds before and after.
  platform:
    platforms: posix
requirements:
  - Linux with sysfs, and util-linux (C(wipefs), C(blkid)) on the target.
  - C(mkfs.ext4) (e2fsprogs) or C(mkfs.xfs) (xfsprogs) for a blank volume.
  - Root, to read the device.
notes:
  - C(mkfs) is run without any force flag, so it still refuses a device that is in use.
seealso:
  - module: ansible.posix.mount
  - name: Amazon EBS and NVMe on Linux instances
    description: How EBS volumes appear as NVMe devices.
    link: https://docs.aws.amazon.com/ebs/latest/userguide/nvme-ebs-volumes.html
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Find the data volume on a Nitro instance, creating ext4 on it if it is blank
  segway.cluster.ebs_device:
    name: data
    volume_id: vol-0123456789abcdef0
  register: data_device

- name: Mount it by UUID, without hanging the boot when it is missing
  ansible.posix.mount:
    path: /data
    src: "UUID={{ data_device.uuid }}"
    fstype: "{{ data_device.fstype }}"
    opts: defaults,nofail,x-systemd.device-timeout=30s
    state: mounted

- name: A volume attached as /dev/sdf on a Xen instance (seen as /dev/xvdf), xfs, never formatted
  segway.cluster.ebs_device:
    name: archive
    volume_id: vol-0aaaabbbbccccdddd
    device: /dev/sdf
    fstype: xfs
    format: never

- name: Only look (fails before any change if the volume is missing or unusable)
  segway.cluster.ebs_device:
    name: scratch
    device: /dev/vdb
  check_mode: true
"""

RETURN = r"""
device:
  description: The block device that holds (or would hold) the filesystem, a disk or its partition.
  returned: success
  type: str
  sample: /dev/nvme1n1
disk:
  description: The whole disk of the volume, symlinks resolved.
  returned: success
  type: str
  sample: /dev/nvme1n1
found_by:
  description: How the disk was recognised.
  returned: success
  type: str
  sample: udev link /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0
fstype:
  description: Filesystem type on RV(device) after the task (in check mode, what it would be).
  returned: success
  type: str
  sample: ext4
uuid:
  description: Filesystem UUID; empty in check mode when the filesystem is not created yet.
  returned: success
  type: str
  sample: 9c9df008-5f0b-4750-9815-8b10f503b133
formatted:
  description: Whether a filesystem was created (would be, in check mode).
  returned: success
  type: bool
partition_table:
  description: Partition table type of the disk (V(gpt), V(dos)), empty when none.
  returned: success
  type: str
  sample: gpt
partitions:
  description: The kernel's partitions of the disk.
  returned: success
  type: list
  elements: str
  sample: [nvme1n1p1]
signatures:
  description: Signatures C(wipefs --no-act) found on the disk before the task.
  returned: success
  type: list
  elements: dict
  sample: [{offset: "0x438", type: ext4, uuid: 9c9df008-5f0b-4750-9815-8b10f503b133, label: ""}]
content:
  description: What the disk held before the task, in words.
  returned: success
  type: str
  sample: filesystem ext4 UUID=9c9df008-5f0b-4750-9815-8b10f503b133
"""

import os  # noqa: E402
import stat  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.ebs import (  # noqa: E402
    FORMAT_CHOICES,
    FSTYPES,
    ZERO_CHECK_BYTES,
    Content,
    DeviceError,
    all_zero,
    mkfs_command,
    parse_blkid,
    parse_wipefs,
    partitions,
    plan,
    wait_for_device,
)

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "volume_id": {"type": "str"},
    "device": {"type": "path"},
    "fstype": {"type": "str", "default": "ext4", "choices": list(FSTYPES)},
    "format": {"type": "str", "default": "if_blank", "choices": list(FORMAT_CHOICES)},
    "partition": {"type": "int"},
    "label": {"type": "str"},
    "timeout": {"type": "int", "default": 60},
}


class Prober:
    """Runs wipefs and blkid on the target through the module."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.wipefs = module.get_bin_path("wipefs", required=True)
        self.blkid = module.get_bin_path("blkid", required=True)

    def probe(self, device: str, whole_disk: bool) -> Content:
        rc, out, err = self.module.run_command([self.wipefs, "--no-act", "--json", device])
        if rc != 0:
            raise DeviceError(f"wipefs --no-act {device} failed (rc {rc}): {err.strip()}")
        signatures = parse_wipefs(out)
        # blkid exits 2 when it finds nothing to report.
        rc, out, err = self.module.run_command([self.blkid, "--probe", "-o", "export", device])
        if rc not in (0, 2):
            raise DeviceError(f"blkid --probe {device} failed (rc {rc}): {err.strip()}")
        probe = parse_blkid(out) if rc == 0 else {}
        nonzero = False
        if whole_disk:
            with open(device, "rb") as stream:
                nonzero = not all_zero(stream.read(ZERO_CHECK_BYTES))
        return Content(
            signatures=signatures,
            probe=probe,
            partitions=partitions(device) if whole_disk else [],
            nonzero=nonzero,
        )


def require_block_device(name: str, path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise DeviceError(f"volume {name!r}: cannot stat {path}: {error}") from None
    if not stat.S_ISBLK(mode):
        raise DeviceError(f"volume {name!r}: {path} is not a block device")


def wait_for_node(name: str, path: str, timeout: int) -> None:
    """Wait for a partition's device node (udev creates it a moment after the disk's)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise DeviceError(
                f"volume {name!r}: partition device {path} did not appear within {timeout} s "
                "(the kernel lists the partition in /sys, but there is no device node for it)"
            )
        time.sleep(1)


def run(module: AnsibleModule) -> dict:
    params = module.params
    name = params["name"]
    disk, found_by = wait_for_device(
        name, params["volume_id"], params["device"], timeout=params["timeout"]
    )
    require_block_device(name, disk)
    prober = Prober(module)
    content = prober.probe(disk, whole_disk=True)

    def partition_content(path: str) -> Content:
        wait_for_node(name, path, params["timeout"])
        require_block_device(name, path)
        return prober.probe(path, whole_disk=False)

    decision = plan(
        name,
        disk,
        content,
        fstype=params["fstype"],
        format_policy=params["format"],
        partition=params["partition"],
        partition_content=partition_content,
    )
    uuid = ""
    if decision.format:
        if not module.check_mode:
            # Probe once more right before writing: nothing may have appeared meanwhile.
            if not prober.probe(disk, whole_disk=True).blank:
                raise DeviceError(f"volume {name!r}: {disk} stopped being blank; not formatting")
            argv = mkfs_command(decision.fstype, disk, params["label"])
            argv[0] = module.get_bin_path(argv[0], required=True)
            rc, _, err = module.run_command(argv)
            if rc != 0:
                raise DeviceError(f"volume {name!r}: {' '.join(argv)} failed: {err.strip()}")
            uuid = prober.probe(disk, whole_disk=False).probe.get("UUID", "")
    else:
        probed = content if decision.device == disk else prober.probe(decision.device, False)
        uuid = probed.probe.get("UUID", "")
    before = f"{decision.device}: {content.summary()}\n"
    after = (
        f"{decision.device}: filesystem {decision.fstype} (new)\n" if decision.format else before
    )
    return {
        "changed": decision.format,
        "device": decision.device,
        "disk": disk,
        "found_by": found_by,
        "fstype": decision.fstype,
        "uuid": uuid,
        "formatted": decision.format,
        "partition_table": content.partition_table,
        "partitions": [part for _, part in content.partitions],
        "signatures": content.signatures,
        "content": content.summary(),
        "diff": {"before": before, "after": after},
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_one_of=[("volume_id", "device")],
        supports_check_mode=True,
    )
    if module.params["timeout"] < 0:
        module.fail_json(msg=f"timeout {module.params['timeout']} must be 0 or more seconds")
    try:
        result = run(module)
    except (DeviceError, ValueError) as error:
        module.fail_json(msg=str(error))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
