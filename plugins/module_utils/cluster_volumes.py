# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning of a cluster's EC2 data volumes: check the ``volumes`` input, name each
volume, and add the cluster's own ``/home`` and ``/segway-build`` volumes.

Used by the filter ``segway.cluster.ec2_volume_plan`` (launch's input checks, before any
AWS call) and by the module ``segway.cluster.ec2_cluster_volumes`` (which creates and
attaches them). No AWS calls here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

KEYS = (
    "id",
    "snapshot",
    "size",
    "name",
    "mount",
    "shared",
    "type",
    "iops",
    "throughput",
    "fstype",
    "partition",
)
TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
IOPS_TYPES = ("io1", "io2", "gp3")
FSTYPES = ("ext4", "xfs")
# Device names EC2 attaches data volumes under (on Nitro they show as NVMe devices whose
# serial is the volume id; the name only has to be free on the instance).
DEVICES = tuple(f"/dev/sd{c}" for c in "fghijklmnop")
# Mount points that would hide the system, the cluster's shared /home (its own volume)
# or the shared Segway build path.
RESERVED_MOUNTS = (
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib64",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/segway-build",
    "/sys",
    "/tmp",  # noqa: S108 (a mount point to refuse, not a file to write)
    "/usr",
    "/var",
)
RESERVED_TREES = ("/proc/", "/sys/", "/dev/", "/run/", "/boot/", "/home/", "/etc/", "/usr/")
HOME = {"name": "home", "mount": "/home"}
# The shared build path (roles/segway_env: Segway's virtual environment and GMTK), kept
# like /home so the next launch finds them built. Not a data volume: roles/nfs exports the
# build path read-only by itself.
BUILD = {"name": "segway-build", "mount": "/segway-build"}
DEFAULT_BUILD_SIZE_GIB = 20
MOUNT_RE = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
VOLUME_ID_RE = re.compile(r"^vol-([0-9a-f]{8}|[0-9a-f]{17})$")
SNAPSHOT_RE = re.compile(r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$")
MAX_SIZE_GIB = 65536
BOOL_STRINGS = {"true": True, "yes": True, "on": True, "1": True}
BOOL_STRINGS.update({"false": False, "no": False, "off": False, "0": False})


def _whole(value: Any) -> int | None:
    """value as a whole number (int or digit string), else None; bools are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    return BOOL_STRINGS.get(str(value).strip().lower())


def mount_problem(mount: Any) -> str | None:
    """Why mount cannot be a data volume's mount point, or None."""
    if not isinstance(mount, str) or not MOUNT_RE.match(mount):
        return "must be an absolute path of letters, digits, '.', '_' and '-'"
    if any(part in (".", "..") for part in mount.split("/")):
        return "must not contain '.' or '..' components"
    if mount.rstrip("/") in RESERVED_MOUNTS or mount.startswith(RESERVED_TREES):
        return (
            "is a system directory or the cluster's own /home or /segway-build "
            f"(not allowed: {', '.join(RESERVED_MOUNTS)} and anything under "
            f"{', '.join(t.rstrip('/') for t in RESERVED_TREES)})"
        )
    return None


def default_name(mount: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", mount.rstrip("/").split("/")[-1].lower()).strip("-")[:32]


def _check_entry(at: str, v: Mapping[str, Any]) -> list[str]:  # noqa: PLR0912 (one rule a branch)
    out: list[str] = []
    extra = sorted(set(v) - set(KEYS))
    if extra:
        out.append(f"{at}unknown key(s) {', '.join(extra)} (allowed: {', '.join(KEYS)})")
    if "id" in v:
        clash = [k for k in ("snapshot", "size", "type", "iops", "throughput") if k in v]
        if clash:
            out.append(f"{at}id attaches an existing volume and excludes {', '.join(clash)}")
        if not isinstance(v["id"], str) or not VOLUME_ID_RE.match(v["id"]):
            out.append(f"{at}id '{v['id']}' is not a volume id (vol- and 8 or 17 hex digits)")
    elif "snapshot" not in v and "size" not in v:
        out.append(f"{at}needs one of id, snapshot or size")
    if "snapshot" in v and (
        not isinstance(v["snapshot"], str) or not SNAPSHOT_RE.match(v["snapshot"])
    ):
        out.append(f"{at}snapshot '{v['snapshot']}' is not a snapshot id (snap-...)")
    if "size" in v:
        size = _whole(v["size"])
        if size is None or not 1 <= size <= MAX_SIZE_GIB:
            out.append(f"{at}size '{v['size']}' must be whole GiB from 1 to {MAX_SIZE_GIB}")
    vtype = v.get("type", "gp3")
    if vtype not in TYPES:
        out.append(f"{at}type '{vtype}' is not one of {', '.join(TYPES)}")
    out.extend(_check_performance(at, v, vtype))
    if "shared" in v and _flag(v["shared"]) is None:
        out.append(f"{at}shared '{v['shared']}' must be true or false")
    if "fstype" in v and v["fstype"] not in FSTYPES:
        out.append(f"{at}fstype '{v['fstype']}' is not one of {', '.join(FSTYPES)}")
    if "partition" in v:
        part = _whole(v["partition"])
        if part is None or not 1 <= part <= 128:  # noqa: PLR2004 (GPT's usual maximum)
            out.append(f"{at}partition '{v['partition']}' must be a partition number from 1 to 128")
        elif "id" not in v and "snapshot" not in v:
            out.append(
                f"{at}partition applies to a volume given by id or snapshot; a new empty volume"
                " gets a filesystem on the whole disk"
            )
    problem = mount_problem(v.get("mount"))
    if problem:
        out.append(f"{at}mount '{v.get('mount', '')}' {problem}")
    if "name" in v:
        if not isinstance(v["name"], str) or not NAME_RE.match(v["name"]):
            out.append(f"{at}name '{v['name']}' must be 1-32 lowercase letters, digits and hyphens")
        elif v["name"] in (HOME["name"], BUILD["name"]):
            out.append(
                f"{at}name '{v['name']}' is the cluster's own {v['name']} volume; choose another"
            )
    return out


def _check_performance(at: str, v: Mapping[str, Any], vtype: str) -> list[str]:
    out: list[str] = []
    if "iops" in v:
        iops = _whole(v["iops"])
        if vtype not in IOPS_TYPES:
            out.append(f"{at}iops applies to type {', '.join(IOPS_TYPES)} only, not {vtype}")
        elif iops is None or not 100 <= iops <= 256000:  # noqa: PLR2004 (EC2's io2 range)
            out.append(f"{at}iops '{v['iops']}' must be a whole number from 100 to 256000")
        elif vtype == "gp3" and iops < 3000:  # noqa: PLR2004 (gp3's baseline)
            out.append(f"{at}iops '{v['iops']}' is below gp3's 3000 baseline")
    elif vtype in ("io1", "io2"):
        out.append(f"{at}type {vtype} needs iops (provisioned IOPS, e.g. iops: 3000)")
    if "throughput" in v:
        mibs = _whole(v["throughput"])
        if vtype != "gp3":
            out.append(f"{at}throughput applies to type gp3 only, not {vtype}")
        elif mibs is None or not 125 <= mibs <= 2000:  # noqa: PLR2004 (gp3's range)
            out.append(f"{at}throughput '{v['throughput']}' must be whole MiB/s from 125 to 2000")
    return out


def _own_volumes(
    cluster: str, home_size: Any, build_size: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """The problems with the sizes of the cluster's own volumes, and the volumes: /home,
    then /segway-build unless build_size is 0."""
    problems: list[str] = []
    home = _whole(home_size)
    if home is None or not 1 <= home <= MAX_SIZE_GIB:
        problems.append(
            f"home_volume_size '{home_size}' must be whole GiB from 1 to {MAX_SIZE_GIB}"
        )
    build = _whole(build_size)
    if build is None or not 0 <= build <= MAX_SIZE_GIB:
        problems.append(
            f"build_volume_size '{build_size}' must be whole GiB from 1 to {MAX_SIZE_GIB}, "
            "or 0 for no build volume (Segway and GMTK on the master's root disk, rebuilt "
            "by every launch of a new master)"
        )
    own: list[dict[str, Any]] = []
    for spec, size, shared in ((HOME, home, True), (BUILD, build, False)):
        if spec is BUILD and not build:
            continue
        own.append(
            {
                "name": spec["name"],
                "tag_name": f"{cluster}-{spec['name']}",
                "mount": spec["mount"],
                # The build path is not a data volume: roles/nfs exports it by itself.
                "shared": shared,
                "type": "gp3",
                "size": size if size is not None else 0,
                "create": True,
                "format": "if_blank",
                "home": spec is HOME,
            }
        )
    return problems, own


def plan_volumes(
    volumes: Any, cluster: str, home_size: Any, build_size: Any = DEFAULT_BUILD_SIZE_GIB
) -> dict[str, Any]:
    """Check the volumes input and name each volume.

    Returns {'problems': [...], 'volumes': [...]}: every problem names the entry, the bad
    value and what is allowed. The cluster's /home volume comes first, then its
    /segway-build volume (none when build_size is 0: the build path stays on the master's
    root disk). Each planned volume has name, tag_name (<cluster>-<name>), mount, shared,
    type, create (launch creates it) and format: 'if_blank' only for a volume launch
    creates empty, 'never' for volumes from a snapshot or given by id (their data is
    never formatted).
    """
    problems, planned = _own_volumes(cluster, home_size, build_size)
    if isinstance(volumes, (str, bytes, Mapping)) or not isinstance(volumes, Sequence):
        return {"problems": [*problems, f"volumes must be a list, got {volumes!r}"], "volumes": []}
    own = len(planned)
    if len(volumes) > len(DEVICES) - own:
        problems.append(
            f"volumes: {len(volumes)} volumes are too many: at most {len(DEVICES) - own} "
            "besides the cluster's own /home" + (" and /segway-build" if own > 1 else "")
        )
    for index, v in enumerate(volumes):
        at = f"volumes[{index}] {v!r}: "
        if not isinstance(v, Mapping):
            problems.append(f"{at}is not a mapping")
            continue
        found = _check_entry(at, v)
        problems.extend(found)
        if found:
            continue
        name = v.get("name") or default_name(v["mount"])
        entry: dict[str, Any] = {
            "name": name,
            "tag_name": f"{cluster}-{name}",
            "mount": v["mount"],
            "shared": _flag(v.get("shared", True)),
            "type": v.get("type", "gp3"),
            "create": "id" not in v,
            "format": "if_blank" if "id" not in v and "snapshot" not in v else "never",
            "home": False,
        }
        for key in ("id", "snapshot"):
            if key in v:
                entry[key] = v[key]
        for key in ("size", "iops", "throughput", "partition"):
            if key in v:
                entry[key] = _whole(v[key])
        if "fstype" in v:
            entry["fstype"] = v["fstype"]
        planned.append(entry)
    problems.extend(_duplicates(planned))
    return {"problems": problems, "volumes": planned if not problems else []}


def _duplicates(planned: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    for key, what in (("mount", "mount point"), ("name", "name"), ("id", "volume id")):
        seen: dict[str, int] = {}
        for v in planned:
            if key in v:
                seen[v[key]] = seen.get(v[key], 0) + 1
        twice = sorted(k for k, n in seen.items() if n > 1)
        if twice:
            out.append(f"volumes: two volumes have the same {what}: {', '.join(twice)}")
    return out


def free_device(used: Sequence[str], taken: Sequence[str] = ()) -> str | None:
    """The first data-volume device name neither in use on the instance nor taken in this
    run. /dev/sdf and /dev/xvdf name the same slot."""

    def slot(name: str) -> str:
        return re.sub(r"^/dev/(xvd|sd)", "", name)

    busy = {slot(d) for d in [*used, *taken]}
    for device in DEVICES:
        if slot(device) not in busy:
            return device
    return None
