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
  - With O(copy_from), a filesystem created in this run first receives a copy of that
    directory's contents (mounted at a temporary directory under C(/run), copied with
    C(cp -a), keeping owners, modes, ACLs, extended attributes, hard links), so that mounting the
    volume over the directory hides nothing. Until the copy is complete the filesystem is
    labelled C(SEGWAY-COPY); a later run finds a copy cut short by that label and finishes
    it. A volume that held anything before is never copied onto.
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
  copy_from:
    description:
      - Absolute path of a directory, normally where the volume is about to be mounted.
      - When this run creates the filesystem (a blank disk, O(format=if_blank)) and the
        directory holds anything, its contents are copied onto the new filesystem before the
        module returns, and the filesystem then gets its O(label).
      - A filesystem labelled C(SEGWAY-COPY) (a copy an earlier run did not finish) gets
        the copy finished. Without O(copy_from), or with O(format=never), such a filesystem
        is an error rather than mounted half copied.
      - The directory must not be a mount point of the volume itself, and the volume must
        not be mounted anywhere but a temporary copy mount this module left behind.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Finds and probes the device, and reports whether it would be formatted.
  diff_mode:
    support: full
    details: The diff shows what the device holds before and after, and what is copied onto it.
  platform:
    platforms: posix
requirements:
  - Linux with sysfs, and util-linux (C(wipefs), C(blkid)) on the target.
  - C(mkfs.ext4) and C(e2label) (e2fsprogs) or C(mkfs.xfs) and C(xfs_admin) (xfsprogs) for a
    blank volume; C(mount), C(umount) and GNU C(cp) for O(copy_from).
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

- name: The home volume, given the old /home's contents when it is blank (then mounted at /home)
  segway.cluster.ebs_device:
    name: home
    volume_id: vol-0123456789abcdef1
    label: home
    copy_from: /home

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
copied:
  description:
    - Whether the contents of O(copy_from) were copied onto the filesystem (would be, in check
      mode), after creating it or to finish an earlier run's copy.
  returned: success
  type: bool
copied_entries:
  description: The names at the top of O(copy_from) that were (would be) copied.
  returned: success
  type: list
  elements: str
  sample: [admin, sgeadmin]
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
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.ebs import (  # noqa: E402
    COPY_MOUNT_PREFIX,
    COPY_PENDING_LABEL,
    FORMAT_CHOICES,
    FSTYPES,
    ZERO_CHECK_BYTES,
    Content,
    DeviceError,
    all_zero,
    copy_command,
    mkfs_command,
    mount_points,
    parse_blkid,
    parse_wipefs,
    partitions,
    plan,
    relabel_command,
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
    "copy_from": {"type": "path"},
}
# Temporary copy mounts go here: a tmpfs, so none outlives a reboot.
COPY_MOUNT_BASE = "/run"


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


def source_entries(name: str, copy_from: str | None) -> list[str]:
    """The names in the directory to copy (none when it is missing or empty)."""
    if not copy_from:
        return []
    if not os.path.isabs(copy_from):
        raise DeviceError(f"volume {name!r}: copy_from {copy_from!r} must be an absolute path")
    if not os.path.lexists(copy_from):
        return []
    if not os.path.isdir(copy_from) or os.path.islink(copy_from):
        raise DeviceError(
            f"volume {name!r}: copy_from {copy_from} is not a directory: nothing to copy "
            "the volume's mount point from"
        )
    return sorted(os.listdir(copy_from))


def device_mounts(device: str) -> list[str]:
    """Where the block device is mounted now (any filesystem, any path)."""
    rdev = os.stat(device).st_rdev
    with open("/proc/self/mountinfo") as stream:
        return mount_points(f"{os.major(rdev)}:{os.minor(rdev)}", stream.read())


class Copier:
    """Mounts a new filesystem at a temporary directory and copies a directory onto it."""

    def __init__(self, module: AnsibleModule, name: str) -> None:
        self.module = module
        self.name = name

    def command(self, argv: list[str]) -> None:
        argv = [self.module.get_bin_path(argv[0], required=True), *argv[1:]]
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            raise DeviceError(
                f"volume {self.name!r}: {' '.join(argv)} failed (rc {rc}): {(err or out).strip()}"
            )

    def release_leftover_mounts(self, device: str) -> None:
        """Unmount copy mounts a cut-short run left; refuse any other mount of the device."""
        base = os.path.join(COPY_MOUNT_BASE, COPY_MOUNT_PREFIX)
        for path in device_mounts(device):
            if not path.startswith(base):
                raise DeviceError(
                    f"volume {self.name!r}: {device} is mounted at {path}; not copying onto a "
                    "filesystem in use: unmount it and run again"
                )
            self.command(["umount", path])
            os.rmdir(path)

    def copy(self, device: str, fstype: str, source: str, label: str | None) -> None:
        self.release_leftover_mounts(device)
        target = tempfile.mkdtemp(prefix=COPY_MOUNT_PREFIX, dir=COPY_MOUNT_BASE)
        try:
            self.command(["mount", "-t", fstype, device, target])
            try:
                if os.path.isdir(source):
                    self.command(copy_command(source, target))
            finally:
                self.command(["umount", target])
        finally:
            os.rmdir(target)
        # Labelled only now: until here the filesystem says its copy is unfinished.
        self.command(relabel_command(fstype, device, label))


def format_disk(prober: Prober, name: str, disk: str, fstype: str, label: str | None) -> None:
    """mkfs on a disk that is still blank (probed once more right before writing)."""
    if not prober.probe(disk, whole_disk=True).blank:
        raise DeviceError(f"volume {name!r}: {disk} stopped being blank; not formatting")
    argv = mkfs_command(fstype, disk, label)
    argv[0] = prober.module.get_bin_path(argv[0], required=True)
    rc, _out, err = prober.module.run_command(argv)
    if rc != 0:
        raise DeviceError(f"volume {name!r}: {' '.join(argv)} failed: {err.strip()}")


def run(module: AnsibleModule) -> dict:
    params = module.params
    name = params["name"]
    copy_from = params["copy_from"]
    entries = source_entries(name, copy_from)
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
        copy=bool(copy_from),
    )
    # A new filesystem gets a copy when there is something to copy; an unfinished copy is
    # always finished (the filesystem's label must become the volume's own).
    copying = decision.finish_copy or (decision.format and bool(entries))
    if not module.check_mode:
        if decision.format:
            label = COPY_PENDING_LABEL if copying else params["label"]
            format_disk(prober, name, disk, decision.fstype, label)
        if copying:
            Copier(module, name).copy(disk, decision.fstype, copy_from, params["label"])
    if decision.format:
        # In check mode the filesystem does not exist yet: no UUID.
        uuid = "" if module.check_mode else prober.probe(disk, False).probe.get("UUID", "")
    else:
        probed = content if decision.device == disk else prober.probe(decision.device, False)
        uuid = probed.probe.get("UUID", "")
    before = f"{decision.device}: {content.summary()}\n"
    after = before
    if decision.format or copying:
        state = "(new)" if decision.format else f"UUID={uuid} labelled {params['label'] or '-'}"
        after = f"{decision.device}: filesystem {decision.fstype} {state}"
        if copying:
            after += f", holding a copy of {copy_from}: {', '.join(entries) or '(empty)'}"
        after += "\n"
    return {
        "changed": decision.format or copying,
        "device": decision.device,
        "disk": disk,
        "found_by": found_by,
        "fstype": decision.fstype,
        "uuid": uuid,
        "formatted": decision.format,
        "copied": copying,
        "copied_entries": entries if copying else [],
        "partition_table": content.partition_table,
        "partitions": [part for _number, part in content.partitions],
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
