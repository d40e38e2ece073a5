# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding an attached EBS volume's block device, and telling whether it is blank.

Everything here is pure or reads only the directory trees it is given (``dev_root``,
``sys_root``), so unit tests drive it with fake ``/dev`` and ``/sys`` trees. The module
``segway.cluster.ebs_device`` runs the commands (``wipefs``, ``blkid``, ``mkfs``) and
passes their output to the parsers below.

How EC2 shows a volume:

- Nitro instances (every current type): an NVMe namespace whose controller's serial is
  the volume id without its dash (``vol-0123abcd`` -> ``vol0123abcd``), in
  ``/sys/block/nvme1n1/device/serial`` (what ``lsblk -o SERIAL`` prints), and a udev link
  ``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123abcd``. The name the volume was
  attached under (``/dev/sdf``) is not the device name.
- Xen instances (older types): no serial; the volume attached as ``/dev/sdf`` appears as
  ``/dev/xvdf``.

On an instance where any disk shows an EBS serial, the volume id is the only thing that
decides: a device name is then never trusted on its own.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

NVME_BY_ID_PREFIX = "nvme-Amazon_Elastic_Block_Store_"
FSTYPES = ("ext4", "xfs")
FORMAT_CHOICES = ("if_blank", "never")

_VOLUME_ID_RE = re.compile(r"^vol-?([0-9a-f]{8}|[0-9a-f]{17})$")
_XEN_RE = re.compile(r"^/dev/(sd|xvd)([a-z]{1,2})$")
# Signature types that are partition tables (wipefs TYPE / blkid PTTYPE values).
PARTITION_TABLE_TYPES = frozenset(
    {"gpt", "dos", "PMBR", "atari", "bsd", "mac", "sgi", "sun", "solaris", "unixware", "minix"}
)
# How much of the start of a device must be zero bytes for it to count as blank.
ZERO_CHECK_BYTES = 1024 * 1024
# Label of a filesystem this collection created on a blank volume and is still copying
# a mount point's old contents onto (at most 12 characters: XFS's limit). The volume's
# own label replaces it once the copy is complete, so a copy cut short (a lost
# connection, a reboot) is recognised on the next run and finished, never mounted half
# done and never mistaken for a volume that holds data of its own.
COPY_PENDING_LABEL = "SEGWAY-COPY"
# Where a new filesystem is mounted while the old contents are copied onto it.
COPY_MOUNT_PREFIX = "segway-ebs-copy."


class DeviceError(Exception):
    """A volume cannot be used as asked; nothing has been written."""


class DeviceNotFound(DeviceError):
    """No block device for the volume (yet)."""


class AmbiguousDevice(DeviceError):
    """More than one block device claims to be the volume."""


def volume_serial(volume_id: str) -> str:
    """The NVMe serial of an EBS volume id: ``vol-0123abcd`` -> ``vol0123abcd``."""
    match = _VOLUME_ID_RE.match(volume_id.strip())
    if match is None:
        raise ValueError(
            f"volume_id {volume_id!r} is not an EBS volume id: expected vol- and 8 or 17 "
            "lowercase hex digits, e.g. vol-0123456789abcdef0"
        )
    return "vol" + match.group(1)


def xen_names(device: str) -> list[str]:
    """The names one attachment can have: ``/dev/sdf`` and ``/dev/xvdf``, given first."""
    match = _XEN_RE.match(device)
    if match is None:
        return [device]
    other = "xvd" if match.group(1) == "sd" else "sd"
    return [device, f"/dev/{other}{match.group(2)}"]


def _under(root: str, path: str) -> str:
    """``path`` (absolute, in /dev) inside the tree ``root`` (``/`` on a real host)."""
    return os.path.join(root, path.lstrip("/")) if root != "/" else path


def _outside(root: str, path: str) -> str:
    """The reverse of ``_under``: a path found in the tree, as the host names it."""
    if root == "/":
        return path
    return "/" + os.path.relpath(path, root)


def read_serials(sys_root: str = "/") -> dict[str, str]:
    """Whole disks and their serials, from ``/sys/block/NAME/device/serial`` (lsblk's source)."""
    block = _under(sys_root, "/sys/block")
    serials: dict[str, str] = {}
    try:
        names = sorted(os.listdir(block))
    except OSError:
        return serials
    for name in names:
        try:
            with open(os.path.join(block, name, "device", "serial")) as stream:
                serials[name] = stream.read().strip()
        except OSError:
            serials[name] = ""
    return serials


def serial_matches(serial: str, wanted: str) -> bool:
    """Whether a disk serial is the volume's (some kernels keep the dash: ``vol-0123``)."""
    return serial.replace("-", "") == wanted


@dataclass
class Lookup:
    """What one resolution attempt saw: the candidates and where it looked."""

    candidates: dict[str, str] = field(default_factory=dict)  # real device -> how found
    looked_at: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    ebs_serials: bool = False  # some disk shows an EBS serial: a Nitro instance

    def add(self, device: str, how: str) -> None:
        self.candidates.setdefault(device, how)


def lookup(
    volume_id: str | None,
    device: str | None,
    dev_root: str = "/",
    sys_root: str = "/",
) -> Lookup:
    """Every block device that is the volume, by id (NVMe) and by attachment name (Xen).

    Device paths in the result are host paths (``/dev/nvme1n1``), symlinks resolved.
    """
    found = Lookup()
    serials = read_serials(sys_root)
    found.ebs_serials = any(s.startswith("vol") for s in serials.values())
    if volume_id:
        serial = volume_serial(volume_id)
        link = f"/dev/disk/by-id/{NVME_BY_ID_PREFIX}{serial}"
        found.looked_at.append(link)
        if os.path.exists(_under(dev_root, link)):
            real = _outside(dev_root, os.path.realpath(_under(dev_root, link)))
            found.add(real, f"udev link {link}")
        found.looked_at.append(f"a disk with serial {serial} in /sys/block")
        for name, value in serials.items():
            if serial_matches(value, serial) and os.path.exists(_under(dev_root, f"/dev/{name}")):
                found.add(f"/dev/{name}", f"serial {value} of /sys/block/{name}")
    # A device name counts, except on a Nitro instance when the volume id was given and
    # no disk has it yet: there a name alone is never trusted. A name that leads to
    # another disk than the id does is a second candidate (and resolve() refuses).
    by_id = bool(found.candidates)
    if device:
        for name in xen_names(device):
            found.looked_at.append(name)
            path = _under(dev_root, name)
            if not os.path.exists(path):
                continue
            real = _outside(dev_root, os.path.realpath(path))
            if volume_id and found.ebs_serials and not by_id:
                found.ignored.append(
                    f"{name} (a Nitro instance: the disk with volume id {volume_id} decides)"
                )
                continue
            found.add(real, "device name " + name + (f" (-> {real})" if real != name else ""))
    return found


def describe_disks(serials: Mapping[str, str]) -> str:
    """``nvme0n1 (serial vol0aaa), xvda`` for error messages."""
    parts = [f"{name} (serial {s})" if s else name for name, s in sorted(serials.items())]
    return ", ".join(parts) or "(none)"


def resolve(
    name: str,
    volume_id: str | None,
    device: str | None,
    dev_root: str = "/",
    sys_root: str = "/",
) -> tuple[str, str]:
    """The one block device of a volume and how it was found, or DeviceNotFound/Ambiguous."""
    if not volume_id and not device:
        raise DeviceError(f"volume {name!r}: give volume_id (EC2) or device (any host)")
    found = lookup(volume_id, device, dev_root, sys_root)
    label = f"volume {name!r} ({', '.join(x for x in (volume_id, device) if x)})"
    if len(found.candidates) > 1:
        listed = "; ".join(f"{dev} by {how}" for dev, how in sorted(found.candidates.items()))
        raise AmbiguousDevice(
            f"{label} matches more than one block device: {listed}. Refusing to guess: "
            "fix volume_id/device so that they name one disk"
        )
    if not found.candidates:
        raise DeviceNotFound(
            f"{label} has no block device: looked for {', '.join(found.looked_at)}; "
            f"disks present: {describe_disks(read_serials(sys_root))}"
            + (f"; ignored {'; '.join(found.ignored)}" if found.ignored else "")
        )
    [(real, how)] = list(found.candidates.items())
    return real, how


def wait_for_device(
    name: str,
    volume_id: str | None,
    device: str | None,
    *,
    timeout: float,
    dev_root: str = "/",
    sys_root: str = "/",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    interval: float = 1.0,
) -> tuple[str, str]:
    """``resolve`` until the device appears or ``timeout`` seconds have passed."""
    deadline = clock() + timeout
    while True:
        try:
            return resolve(name, volume_id, device, dev_root, sys_root)
        except DeviceNotFound as error:
            if clock() >= deadline:
                raise DeviceNotFound(f"{error} (waited {timeout:g} s)") from None
        sleep(interval)


def partitions(disk: str, sys_root: str = "/") -> list[tuple[int, str]]:
    """The kernel's partitions of a disk, ``[(1, "nvme1n1p1"), ...]``, from sysfs."""
    base = _under(sys_root, f"/sys/class/block/{os.path.basename(disk)}")
    found = []
    try:
        children = os.listdir(base)
    except OSError:
        return []
    for child in children:
        try:
            with open(os.path.join(base, child, "partition")) as stream:
                found.append((int(stream.read().strip()), child))
        except (OSError, ValueError):
            continue
    return sorted(found)


def parse_wipefs(text: str) -> list[dict[str, str]]:
    """Signatures from ``wipefs --no-act --json DEVICE`` (empty output: none)."""
    if not text.strip():
        return []
    data = json.loads(text)
    return [
        {key: str(sig.get(key) or "") for key in ("offset", "type", "uuid", "label")}
        for sig in data.get("signatures", [])
    ]


def parse_blkid(text: str) -> dict[str, str]:
    """``blkid --probe --output export DEVICE`` as a dict (TYPE, UUID, PTTYPE, ...)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


@dataclass
class Content:
    """What is on a block device, as far as the probes can tell."""

    signatures: list[dict[str, str]]
    probe: dict[str, str]
    partitions: list[tuple[int, str]]
    nonzero: bool  # the first ZERO_CHECK_BYTES hold data

    @property
    def partition_table(self) -> str:
        if self.probe.get("PTTYPE"):
            return self.probe["PTTYPE"]
        tables = [s["type"] for s in self.signatures if s["type"] in PARTITION_TABLE_TYPES]
        return tables[0] if tables else ""

    @property
    def fstype(self) -> str:
        if self.probe.get("TYPE"):
            return self.probe["TYPE"]
        others = [s["type"] for s in self.signatures if s["type"] not in PARTITION_TABLE_TYPES]
        return others[0] if others else ""

    @property
    def blank(self) -> bool:
        return not (
            self.signatures
            or self.probe.get("TYPE")
            or self.probe.get("PTTYPE")
            or self.partitions
            or self.nonzero
        )

    @property
    def copy_pending(self) -> bool:
        """A whole-disk filesystem left by a copy that did not finish (see COPY_PENDING_LABEL)."""
        return bool(self.fstype) and self.probe.get("LABEL") == COPY_PENDING_LABEL

    def summary(self) -> str:
        if self.blank:
            return "blank (no signature, no partition table, zeros at the start)"
        if self.copy_pending:
            return (
                f"filesystem {self.fstype} UUID={self.probe.get('UUID', '?')} with label "
                f"{COPY_PENDING_LABEL}: made by segway.cluster on a blank volume, holding an "
                "unfinished copy of the mount point's old contents"
            )
        parts = []
        if self.partition_table or self.partitions:
            names = ", ".join(name for _start, name in self.partitions) or "no partitions"
            parts.append(f"partition table {self.partition_table or '?'} ({names})")
        if self.fstype:
            uuid = self.probe.get("UUID")
            parts.append(f"filesystem {self.fstype}" + (f" UUID={uuid}" if uuid else ""))
        extra = sorted(
            {s["type"] for s in self.signatures} - {self.fstype, self.partition_table} - {""}
        )
        if extra:
            parts.append("signatures " + ", ".join(extra))
        if not parts and self.nonzero:
            parts.append("no known signature, but data in its first MiB")
        return "; ".join(parts)


def all_zero(chunk: bytes) -> bool:
    return not chunk.strip(b"\0")


@dataclass
class Plan:
    """What to do with a volume's device: mount ``device`` (formatting it first or not)."""

    device: str
    fstype: str
    format: bool
    reason: str
    # Finish the copy of the mount point's old contents that an earlier run started on
    # a filesystem it had just created (the filesystem is labelled COPY_PENDING_LABEL).
    finish_copy: bool = False


def plan(
    name: str,
    disk: str,
    disk_content: Content,
    *,
    fstype: str,
    format_policy: str,
    partition: int | None,
    partition_content: Callable[[str], Content],
    copy: bool = False,
) -> Plan:
    """Decide what to mount, and whether to format; raise DeviceError when neither is safe.

    ``partition_content`` probes a partition device (``/dev/nvme1n1p1``) when the disk is
    partitioned. Only a blank whole disk is ever formatted, and only with ``if_blank``.
    ``copy``: the caller copies the mount point's old contents onto a new filesystem; a
    filesystem still labelled COPY_PENDING_LABEL is then finished, and refused without it.
    """
    label = f"volume {name!r} ({disk})"
    if fstype not in FSTYPES:
        raise DeviceError(f"{label}: fstype {fstype!r} is not allowed: use one of {FSTYPES}")
    if format_policy not in FORMAT_CHOICES:
        raise DeviceError(
            f"{label}: format {format_policy!r} is not allowed: use one of {FORMAT_CHOICES}"
        )
    if disk_content.partition_table or disk_content.partitions:
        parts = disk_content.partitions
        if partition is None:
            if len(parts) != 1:
                raise DeviceError(
                    f"{label} has partition table {disk_content.partition_table or '?'} with "
                    f"{len(parts)} partitions ({', '.join(p for _start, p in parts) or 'none'}): "
                    "set partition: N to choose one; a partitioned disk is never formatted"
                )
            number, part = parts[0]
        else:
            chosen = [p for p in parts if p[0] == partition]
            if not chosen:
                raise DeviceError(
                    f"{label}: partition {partition} does not exist (partitions: "
                    f"{', '.join(p for _start, p in parts) or 'none'})"
                )
            number, part = chosen[0]
        content = partition_content(f"/dev/{part}")
        if not content.fstype:
            raise DeviceError(
                f"{label}: its partition {number} (/dev/{part}) holds no filesystem "
                f"({content.summary()}). A partitioned disk is never formatted: create the "
                "filesystem yourself or give a blank volume"
            )
        _same_fstype(label + f" partition /dev/{part}", content.fstype, fstype)
        return Plan(f"/dev/{part}", content.fstype, False, f"partition {number} of {disk}")
    if partition is not None:
        raise DeviceError(
            f"{label}: partition {partition} asked for, but the disk has no partitions"
        )
    if disk_content.fstype:
        _same_fstype(label, disk_content.fstype, fstype)
        return _whole_disk_filesystem(label, disk, disk_content, format_policy, copy=copy)
    if not disk_content.blank:
        raise DeviceError(
            f"{label} is not blank ({disk_content.summary()}) and holds no filesystem this "
            "role can mount: it is never formatted; inspect it with wipefs -n and blkid -p"
        )
    if format_policy == "never":
        raise DeviceError(
            f"{label} is blank and format is 'never': set format: if_blank to create an "
            f"{fstype} filesystem on it, or give the volume that holds the data"
        )
    return Plan(disk, fstype, True, "blank disk")


def _whole_disk_filesystem(
    label: str, disk: str, content: Content, format_policy: str, *, copy: bool
) -> Plan:
    """Mount it; a copy an earlier run left unfinished is finished first, or refused."""
    if not content.copy_pending:
        return Plan(disk, content.fstype, False, "whole-disk filesystem")
    if not copy or format_policy != "if_blank":
        raise DeviceError(
            f"{label} holds a filesystem that segway.cluster created on it when it was blank "
            "and has not finished copying the mount point's old contents onto (label "
            f"{COPY_PENDING_LABEL}): mounting it would show a partial copy. Set "
            "copy_existing: true and format: if_blank to finish the copy, or give it another "
            "label (e2label / xfs_admin -L) to use it as it is"
        )
    return Plan(disk, content.fstype, False, "unfinished copy", finish_copy=True)


def _same_fstype(label: str, found: str, wanted: str) -> None:
    if found != wanted:
        raise DeviceError(
            f"{label} holds a {found} filesystem but fstype is {wanted!r}: set fstype: {found} "
            "(a device with a filesystem is never reformatted)"
        )


def mkfs_command(fstype: str, device: str, label: str | None = None) -> list[str]:
    """mkfs argv; neither tool is given a force flag, so both refuse a device in use."""
    argv = [f"mkfs.{fstype}"]
    if fstype == "ext4":
        argv += ["-q"]
        if label:
            argv += ["-L", label[:16]]
    elif label:
        argv += ["-L", label[:12]]
    return [*argv, device]


def relabel_command(fstype: str, device: str, label: str | None) -> list[str]:
    """argv giving an unmounted filesystem its label (an empty label clears it)."""
    if fstype == "ext4":
        return ["e2label", device, (label or "")[:16]]
    return ["xfs_admin", "-L", (label or "")[:12] or "--", device]


def copy_command(source: str, target: str) -> list[str]:
    """argv copying the contents of directory ``source`` into directory ``target``.

    ``cp -a`` keeps owners, modes, timestamps, ACLs, extended attributes, hard links,
    symlinks and special files; ``source/.`` copies the directory's own owner and mode
    onto ``target`` too. ``--remove-destination`` replaces what an interrupted copy left
    rather than writing into it, so finishing that copy keeps hard links intact.
    """
    source = source.rstrip("/") or "/"
    return ["cp", "-a", "--remove-destination", "--", f"{source}/.", target]


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points(majmin: str, mountinfo: str) -> list[str]:
    """Where the block device ``major:minor`` is mounted, from /proc/self/mountinfo."""
    found = []
    for line in mountinfo.splitlines():
        # ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS ...
        _mount_id, _parent, device, _root, mount_point, *_rest = [*line.split(), "", "", "", "", ""]
        if device == majmin and mount_point:
            found.append(_unescape_mountinfo(mount_point))
    return found
