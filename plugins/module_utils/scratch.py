# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scratch space on a node's instance-store disks, found by their identity, never by "blank".

This file is also the boot script: roles/scratch installs a copy of it on every node and
``segway-scratch.service`` runs it at every boot (``start``) and at shutdown (``stop``).
It therefore imports nothing but the standard library.

How EC2 shows disks on Nitro instances (every current type):

- instance store (NVMe): model ``Amazon EC2 NVMe Instance Storage`` in
  ``/sys/block/nvme1n1/device/model`` (``lsblk -o MODEL``) and a udev link
  ``/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_<serial>``;
- EBS: model ``Amazon Elastic Block Store``, serial ``vol0123...`` and a udev link
  ``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123...``.

A disk is taken as scratch only when its model or a by-id link names an instance-store
model, and never when it carries ANY EBS identity (model, by-id link or volume serial, even
beside an instance-store link), is read-only, is partitioned, is mounted or used as swap
(itself or a partition), or has holders other than this script's own array (an LVM or md
member, the root disk's stack). Instance store is blank after every stop/start, so ``start``
creates the filesystem anew at every boot: one disk directly, several striped by mdadm
(RAID 0). Without any instance store, the scratch path is a directory on the root disk.
Either way it gets ``tmp`` (mode 1777, Grid Engine's queue tmpdir) and a directory per
cluster user (owner the user, mode 0700).

Everything but ``main`` and the ``System`` runner is pure or reads only the trees it is
given (``dev_root``, ``sys_root``), so unit tests drive it with fake ``/dev`` and ``/sys``.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

INSTANCE_STORE_MODELS = ("Amazon EC2 NVMe Instance Storage",)
EBS_MODEL = "Amazon Elastic Block Store"
EBS_BY_ID_PREFIX = "nvme-Amazon_Elastic_Block_Store_"
FSTYPES = ("ext4", "xfs")
# Filesystem label of the scratch filesystem (XFS allows 12 characters).
LABEL = "segway-scr"
# The array several instance-store disks are striped into.
MD_DEVICE = "/dev/md/segway-scratch"
MD_NAME = "segway-scratch"
TMP_DIR = "tmp"
STATE_FILE = "/run/segway-scratch.json"
CONFIG_FILE = "/etc/segway-scratch.json"

_EBS_SERIAL_RE = re.compile(r"^vol-?[0-9a-f]{8,17}$")
# Paths scratch must never be (it is formatted over and its tmp is made world-writable).
_SYSTEM_PATHS = ("", "/tmp", "/home", "/var", "/usr", "/etc", "/root", "/boot")  # noqa: S108
# Mode of the scratch root, and of its tmp (sticky, world-writable, as /tmp).
ROOT_MODE = 0o755
TMP_MODE = 0o1777
USER_MODE = 0o700
_MOUNTINFO_MIN_FIELDS = 10
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class ScratchError(Exception):
    """Scratch space cannot be set up as asked."""


def by_id_prefix(model: str) -> str:
    """The udev by-id link prefix of an NVMe model: spaces become underscores."""
    return "nvme-" + re.sub(r"\s+", "_", model.strip()) + "_"


@dataclass
class Disk:
    """A whole block device, as /sys and /dev/disk/by-id show it."""

    name: str
    majmin: str = ""
    model: str = ""
    serial: str = ""
    read_only: bool = False
    partitions: list[str] = field(default_factory=list)  # their major:minor
    holders: list[str] = field(default_factory=list)  # kernel names (md127, dm-0)
    links: list[str] = field(default_factory=list)  # /dev/disk/by-id names

    @property
    def path(self) -> str:
        return "/dev/" + self.name


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/")) if root != "/" else path


def _read(path: str) -> str:
    try:
        with open(path) as stream:
            return stream.read().strip()
    except OSError:
        return ""


def read_links(dev_root: str = "/") -> dict[str, list[str]]:
    """Kernel device name -> the names of its /dev/disk/by-id links."""
    by_id = _under(dev_root, "/dev/disk/by-id")
    links: dict[str, list[str]] = {}
    try:
        names = sorted(os.listdir(by_id))
    except OSError:
        return links
    for name in names:
        target = os.path.realpath(os.path.join(by_id, name))
        links.setdefault(os.path.basename(target), []).append(name)
    return links


def read_disks(sys_root: str = "/", dev_root: str = "/") -> list[Disk]:
    """Every whole disk in /sys/block, with what identifies it and what uses it."""
    block = _under(sys_root, "/sys/block")
    links = read_links(dev_root)
    disks = []
    try:
        names = sorted(os.listdir(block))
    except OSError:
        return disks
    for name in names:
        base = os.path.join(block, name)
        try:
            entries = sorted(os.listdir(base))
        except OSError:
            entries = []
        partitions = [
            _read(os.path.join(base, entry, "dev"))
            for entry in entries
            if entry.startswith(name) and os.path.exists(os.path.join(base, entry, "partition"))
        ]
        try:
            holders = sorted(os.listdir(os.path.join(base, "holders")))
        except OSError:
            holders = []
        disks.append(
            Disk(
                name=name,
                majmin=_read(os.path.join(base, "dev")),
                model=_read(os.path.join(base, "device", "model")),
                serial=_read(os.path.join(base, "device", "serial")),
                read_only=_read(os.path.join(base, "ro")) == "1",
                partitions=partitions,
                holders=holders,
                links=links.get(name, []),
            )
        )
    return disks


def mounted_majmins(mountinfo: str) -> set[str]:
    """major:minor of every mounted block device, from /proc/self/mountinfo."""
    return {line.split()[2] for line in mountinfo.splitlines() if len(line.split()) > 2}  # noqa: PLR2004


def swap_devices(swaps: str) -> set[str]:
    """Kernel names of devices in use as swap, from /proc/swaps."""
    return {os.path.basename(line.split()[0]) for line in swaps.splitlines()[1:] if line.split()}


def ebs_identity(disk: Disk) -> str:
    """Why a disk is EBS ('' when nothing says so)."""
    if disk.model.strip() == EBS_MODEL:
        return f"model {EBS_MODEL!r}"
    for link in disk.links:
        if link.startswith(EBS_BY_ID_PREFIX):
            return f"by-id link {link}"
    if _EBS_SERIAL_RE.match(disk.serial.strip()):
        return f"EBS volume serial {disk.serial.strip()}"
    return ""


def instance_store_identity(disk: Disk, models: Sequence[str]) -> str:
    """Why a disk is instance store ('' when nothing says so)."""
    for model in models:
        if disk.model.strip() == model.strip():
            return f"model {model!r}"
    for model in models:
        prefix = by_id_prefix(model)
        for link in disk.links:
            if link.startswith(prefix):
                return f"by-id link {link}"
    return ""


@dataclass
class Selection:
    """The instance-store disks to use, and why every other disk that claims it is not."""

    chosen: list[str] = field(default_factory=list)  # /dev paths, sorted
    # Holders of chosen disks: this script's own array from an earlier boot, to stop first.
    own_holders: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # /dev path -> reason
    found_by: dict[str, str] = field(default_factory=dict)  # /dev path -> identity


def select(
    disks: Iterable[Disk],
    models: Sequence[str] = INSTANCE_STORE_MODELS,
    mounted: Iterable[str] = (),
    swaps: Iterable[str] = (),
    own_holders: Iterable[str] = (),
) -> Selection:
    """Pick the instance-store disks that are safe to format.

    ``mounted`` holds the major:minor of every mounted device, ``swaps`` the kernel names of
    swap devices, ``own_holders`` the kernel names of this script's own array (an md device
    left by an earlier boot; its members may be taken once it is stopped).
    """
    mounted = set(mounted)
    swaps = set(swaps)
    own = set(own_holders)
    result = Selection()
    for disk in disks:
        identity = instance_store_identity(disk, models)
        if not identity:
            continue
        ebs = ebs_identity(disk)
        reason = ""
        if ebs:
            reason = f"carries an EBS identity ({ebs})"
        elif disk.read_only:
            reason = "is read-only"
        elif disk.partitions:
            reason = "has partitions"
        elif disk.majmin in mounted or mounted.intersection(disk.partitions):
            reason = "is mounted"
        elif disk.name in swaps:
            reason = "is used as swap"
        elif set(disk.holders) - own:
            reason = f"is used by {', '.join(sorted(set(disk.holders) - own))}"
        if reason:
            result.refused[disk.path] = reason
            continue
        result.chosen.append(disk.path)
        result.found_by[disk.path] = identity
        result.own_holders.extend(h for h in disk.holders if h not in result.own_holders)
    result.chosen.sort()
    return result


def mkfs_command(fstype: str, device: str) -> list[str]:
    """Create the scratch filesystem over whatever the (ephemeral) device holds."""
    if fstype == "ext4":
        # No discard pass: a fresh instance-store disk reads as zeros, and discarding a
        # multi-TB disk at every boot takes minutes. No reserved blocks on scratch.
        return ["mkfs.ext4", "-F", "-q", "-m", "0", "-E", "nodiscard", "-L", LABEL, device]
    if fstype == "xfs":
        return ["mkfs.xfs", "-f", "-q", "-K", "-L", LABEL, device]
    raise ScratchError(f"scratch fstype {fstype!r} is not one of {', '.join(FSTYPES)}")


def md_create_command(devices: Sequence[str]) -> list[str]:
    """Stripe several disks into one RAID 0 array."""
    return [
        "mdadm",
        "--create",
        MD_DEVICE,
        "--name",
        MD_NAME,
        "--level=0",
        "--chunk=256",
        f"--raid-devices={len(devices)}",
        "--run",
        "--force",
        "--homehost=<none>",
        *devices,
    ]


def check_config(config: Mapping[str, object]) -> dict[str, object]:
    """The config file's settings, checked, with defaults filled in."""
    path = str(config.get("path", "/scratch"))
    fstype = str(config.get("fstype", "ext4"))
    users = list(config.get("users", []))  # type: ignore[call-overload]
    models = list(config.get("models", list(INSTANCE_STORE_MODELS)))  # type: ignore[call-overload]
    options = list(config.get("mount_options", ["defaults", "noatime"]))  # type: ignore[call-overload]
    problems = []
    if not path.startswith("/") or path.rstrip("/") in _SYSTEM_PATHS or ".." in path:
        problems.append(
            f"path {path!r} must be an absolute path of its own (not /, /tmp, /home, ...)"
        )
    if fstype not in FSTYPES:
        problems.append(f"fstype {fstype!r} is not one of {', '.join(FSTYPES)}")
    bad_users = [
        u for u in users if not isinstance(u, str) or not _USER_RE.match(u) or u == TMP_DIR
    ]
    if bad_users:
        problems.append(f"users {bad_users!r} are not user names")
    if not models or not all(isinstance(m, str) and m.strip() for m in models):
        problems.append(f"models {models!r} must be a non-empty list of disk models")
    if problems:
        raise ScratchError("; ".join(problems))
    return {
        "path": path.rstrip("/"),
        "fstype": fstype,
        "users": users,
        "models": models,
        "mount_options": options,
    }


# ---------------------------------------------------------------------------------------
# The boot script: everything below runs commands.


class System:
    """Commands and files of the running host."""

    def run(self, argv: Sequence[str]) -> str:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ScratchError(
                f"{' '.join(argv)} failed ({proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc.stdout

    def mountinfo(self) -> str:
        return _read("/proc/self/mountinfo")

    def log(self, message: str) -> None:
        sys.stdout.write(f"segway-scratch: {message}\n")
        sys.stdout.flush()


def mounted_source(path: str, mountinfo: str) -> tuple[str, str] | None:
    """(major:minor, fstype) of what is mounted exactly at ``path``, or None."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < _MOUNTINFO_MIN_FIELDS or "-" not in fields:
            continue
        mount_point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if mount_point == path:
            sep = fields.index("-")
            found = (fields[2], fields[sep + 1])
    return found


def own_arrays(dev_root: str = "/") -> list[str]:
    """Kernel name of the md array this script made at an earlier boot (its /dev/md link)."""
    link = _under(dev_root, MD_DEVICE)
    if os.path.lexists(link):
        return [os.path.basename(os.path.realpath(link))]
    return []


def make_dirs(config: Mapping[str, object], system: System) -> None:
    path = str(config["path"])
    os.makedirs(path, exist_ok=True)
    os.chmod(path, ROOT_MODE)
    tmp = os.path.join(path, TMP_DIR)
    os.makedirs(tmp, exist_ok=True)
    os.chmod(tmp, TMP_MODE)  # the queue tmpdir: sticky and world-writable, as /tmp
    for user in config["users"]:  # type: ignore[union-attr]
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            system.log(f"user {user} does not exist: no {path}/{user}")
            continue
        home = os.path.join(path, user)
        os.makedirs(home, exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        os.chmod(home, USER_MODE)
        system.log(f"{home} for {user}:{grp.getgrgid(entry.pw_gid).gr_name}")


def plan(config: Mapping[str, object]) -> tuple[Selection, list[Disk]]:
    disks = read_disks()
    selection = select(
        disks,
        models=config["models"],  # type: ignore[arg-type]
        mounted=mounted_majmins(_read("/proc/self/mountinfo")),
        swaps=swap_devices(_read("/proc/swaps")),
        own_holders=own_arrays(),
    )
    return selection, disks


def start(config: Mapping[str, object], system: System) -> dict[str, object]:
    path = str(config["path"])
    state: dict[str, object] = {"path": path, "devices": [], "source": "root disk", "fstype": ""}
    current = mounted_source(path, system.mountinfo())
    if current is not None:
        # Already set up (the unit restarted without a stop, or an admin mounted it): never
        # format under a mounted filesystem.
        system.log(f"{path} is already mounted ({current[0]}, {current[1]}): not formatting")
        previous = _read(STATE_FILE)
        if previous:
            state = json.loads(previous)
        make_dirs(config, system)
        return state
    selection, _disks = plan(config)
    for device, reason in sorted(selection.refused.items()):
        system.log(f"not using {device}: it {reason}")
    devices = list(selection.chosen)
    if len(devices) > 1 and shutil.which("mdadm") is None:
        system.log(f"mdadm is not installed: using {devices[0]} alone of {', '.join(devices)}")
        devices = devices[:1]
    os.makedirs(path, exist_ok=True)
    if devices:
        for holder in selection.own_holders:
            system.run(["mdadm", "--stop", "/dev/" + holder])
        for device in devices:
            system.run(["wipefs", "--all", "--quiet", device])
        target = devices[0]
        if len(devices) > 1:
            system.run(md_create_command(devices))
            # udev makes the /dev/md/<name> link a moment after mdadm returns.
            if shutil.which("udevadm") is not None:
                system.run(["udevadm", "settle", "--timeout=30"])
            target = MD_DEVICE
        system.run(mkfs_command(str(config["fstype"]), target))
        options = ",".join(config["mount_options"])  # type: ignore[arg-type]
        system.run(["mount", "-t", str(config["fstype"]), "-o", options, target, path])
        state = {"path": path, "devices": devices, "source": target, "fstype": config["fstype"]}
        system.log(f"{path}: new {config['fstype']} on {target} ({', '.join(devices)})")
    else:
        system.log(f"no instance-store disk: {path} is a directory on the root disk")
    make_dirs(config, system)
    state["found_by"] = {d: selection.found_by[d] for d in devices}
    state["refused"] = selection.refused
    with open(STATE_FILE + ".new", "w") as stream:
        json.dump(state, stream, sort_keys=True)
    os.replace(STATE_FILE + ".new", STATE_FILE)
    return state


def stop(config: Mapping[str, object], system: System) -> None:
    path = str(config["path"])
    if mounted_source(path, system.mountinfo()) is not None:
        system.run(["umount", path])
        system.log(f"unmounted {path}")
    if os.path.lexists(MD_DEVICE):
        system.run(["mdadm", "--stop", MD_DEVICE])
    with contextlib.suppress(FileNotFoundError):
        os.unlink(STATE_FILE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="segway-scratch", description=__doc__.split("\n\n", maxsplit=1)[0]
    )
    parser.add_argument("action", choices=["start", "stop", "plan"])
    parser.add_argument("--config", default=CONFIG_FILE)
    args = parser.parse_args(argv)
    system = System()
    try:
        with open(args.config) as stream:
            config = check_config(json.load(stream))
        if args.action == "plan":
            selection, disks = plan(config)
            report = {"selection": asdict(selection), "disks": [asdict(d) for d in disks]}
            sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
        elif args.action == "start":
            start(config, system)
        else:
            stop(config, system)
    except (OSError, ValueError, ScratchError) as error:
        sys.stderr.write(f"segway-scratch: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
