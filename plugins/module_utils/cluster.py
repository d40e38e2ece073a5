# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of a cluster whatever its provider: a size resolved along its ``extends``
chain, the node list of a local cluster, and the check and plan of provider=local's
``volumes`` input.

Used by the filters of plugins/filter/cluster.py (playbooks/launch.yml and
roles/local_cluster). No calls to docker, AWS or the file system here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from ansible_collections.segway.cluster.plugins.module_utils.cluster_volumes import (
    MAX_SIZE_GIB,
    MOUNT_RE,
    NAME_RE,
    RESERVED_MOUNTS,
)

# What a size may set (playbooks/vars/sizes.yml), and what extra vars override.
SIZE_KEYS = ("extends", "description", "master_type", "compute_type", "compute_count")
SIZE_OVERRIDES = ("master_type", "compute_type", "compute_count")
MAX_COMPUTE_COUNT = 1000
WHOLE_RE = re.compile(r"^[0-9]+$")

# A local volume entry: its own keys, and the EC2-only ones, named when given.
LOCAL_VOLUME_KEYS = ("size", "name", "mount", "shared")
EC2_ONLY_VOLUME_KEYS = ("id", "snapshot", "type")
# Trees a local volume may not be mounted under (the shared /home is a docker volume).
LOCAL_RESERVED_TREE_RE = re.compile(r"^/(proc|sys|dev|run|boot|home)/")
BOOL_STRINGS = ("true", "false", "yes", "no", "on", "off", "1", "0")
TRUE_STRINGS = ("true", "yes", "on", "1")


def jinja_str(value: Any) -> str:
    """value as Jinja's ``~`` and ``string`` show it (str(); True, None as Python spells them)."""
    return str(value)


def _sorted_names(sizes: Mapping[str, Any]) -> str:
    return ", ".join(sorted(sizes, key=lambda name: str(name).lower()))


def _size_chain(sizes: Mapping[str, Any], name: str) -> tuple[list[str], str]:
    """The chain of sizes name extends (name first), or the problem with it."""
    keys = ", ".join(SIZE_KEYS)
    chain = [name]
    while True:
        current = sizes[chain[-1]]
        if not isinstance(current, Mapping):
            return chain, f"size '{chain[-1]}' must be a mapping of {keys}"
        unknown = [str(k) for k in current if k not in SIZE_KEYS]
        if unknown:
            return chain, (
                f"size '{chain[-1]}' has unknown key(s) {', '.join(unknown)}: a size may set {keys}"
            )
        if "extends" not in current:
            return chain, ""
        parent = current["extends"]
        if not isinstance(parent, Hashable) or parent not in sizes:
            return chain, (
                f"size '{chain[-1]}' extends '{parent}', which is not a size "
                f"(one of {_sorted_names(sizes)})"
            )
        if parent in chain:
            return chain, f"size '{name}' extends itself: {' -> '.join([*chain, parent])}"
        chain.append(parent)


def resolve_size(
    sizes: Any, name: Any, custom: Any = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The size name of sizes and custom (custom wins), resolved.

    Base sizes first along the ``extends`` chain, then the size itself, then each of
    overrides (master_type, compute_type, compute_count) that is not ''. Returns the
    resolved keys plus ``name``, ``chain`` and ``error``: '' when the size is usable,
    else one sentence naming the size, the bad value and what is allowed.
    """
    custom = {} if custom is None else custom
    if not isinstance(custom, Mapping):
        return {
            "name": name,
            "chain": [],
            "error": f"custom_sizes must be a mapping of size names to sizes, got {custom!r}",
        }
    if not isinstance(sizes, Mapping):
        sizes = {}
    every = {**sizes, **custom}
    if not isinstance(name, str) or name not in every:
        return {
            "name": name,
            "chain": [],
            "error": (
                f"size '{name}' is not allowed: use one of {_sorted_names(every)}"
                " (playbooks/vars/sizes.yml, or your own in custom_sizes)"
            ),
        }
    chain, error = _size_chain(every, name)
    if error:
        return {"name": name, "chain": chain, "error": error}
    size: dict[str, Any] = {}
    for link in reversed(chain):
        size.update(every[link])
    for key, value in (overrides or {}).items():
        if key in SIZE_OVERRIDES and value != "":
            size[key] = value
    size.update(name=name, chain=chain, error="")
    count = size.get("compute_count", "")
    if not WHOLE_RE.match(jinja_str(count)) or int(count) > MAX_COMPUTE_COUNT:
        size["error"] = (
            f"compute_count '{count}' (size '{name}') must be a whole number"
            f" from 0 to {MAX_COMPUTE_COUNT}"
        )
    return size


def local_node_list(count: Any, existing: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The nodes of a local cluster: the master, node001..node<count>, then every other
    compute node that exists (launch grows a cluster and never removes a node)."""
    names = ["master", *(f"node{i:03d}" for i in range(1, int(count) + 1)), *existing]
    return [
        {"name": n, "groups": ["master"] if n == "master" else ["compute"]}
        for n in dict.fromkeys(names)
    ]


def to_json(value: Any) -> str:
    """value as Ansible's to_json writes it (json.dumps' defaults)."""
    return json.dumps(value, default=str)


def _flag(value: Any) -> bool:
    """Ansible's ``bool`` filter: True for true/yes/on/1 in any case, else False."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_STRINGS


def _local_entry_problems(at: str, v: Mapping[str, Any]) -> list[str]:
    out = []
    ec2_only = [str(k) for k in v if k in EC2_ONLY_VOLUME_KEYS]
    if ec2_only:
        out.append(
            f"{at}{', '.join(ec2_only)} is EC2-only (an EBS volume id, snapshot or type);"
            " provider=local makes an image file of the given size"
        )
    extra = [str(k) for k in v if k not in LOCAL_VOLUME_KEYS + EC2_ONLY_VOLUME_KEYS]
    if extra:
        out.append(f"{at}unknown key(s) {', '.join(extra)}")
    size = v.get("size", "")
    if not WHOLE_RE.match(jinja_str(size)) or not 1 <= int(size) <= MAX_SIZE_GIB:
        out.append(f"{at}size '{size}' must be whole GiB from 1 to {MAX_SIZE_GIB}")
    if "shared" in v and jinja_str(v["shared"]).lower() not in BOOL_STRINGS:
        out.append(f"{at}shared '{v['shared']}' must be true or false")
    mount = v.get("mount", "")
    if (
        not isinstance(mount, str)
        or not MOUNT_RE.match(mount)
        or mount in RESERVED_MOUNTS
        or LOCAL_RESERVED_TREE_RE.match(mount)
    ):
        out.append(
            f"{at}mount '{mount}' must be an absolute path outside the system's own directories"
            " and the shared /home and /segway-build"
        )
    if "name" in v and not NAME_RE.match(jinja_str(v["name"])):
        out.append(f"{at}name '{v['name']}' must be 1-32 lowercase letters, digits and hyphens")
    return out


def local_volume_plan(volumes: Any, volume_path: str) -> dict[str, Any]:
    """Check provider=local's volumes input and give each volume its image file.

    Returns ``problems`` (each naming the entry, the bad value and what is allowed),
    ``volumes`` (name, mount, size, shared, image: <volume_path>/<name>.img; empty when
    there are problems) and ``names_ok`` (the names differ and are usable: a name made
    from the mount path may not be).
    """
    if isinstance(volumes, (str, bytes, Mapping)) or not isinstance(volumes, Sequence):
        return {"problems": [f"must be a list, got {volumes}"], "volumes": [], "names_ok": True}
    problems = []
    for index, v in enumerate(volumes):
        at = f"volumes[{index}] {to_json(v)}: "
        if isinstance(v, Mapping):
            problems.extend(_local_entry_problems(at, v))
        else:
            problems.append(f"{at}is not a mapping")
    mounts = [v["mount"] for v in volumes if isinstance(v, Mapping) and "mount" in v]
    # Ansible's unique ignores case, so /Data and /data count as one mount point.
    if len({jinja_str(m).lower() for m in mounts}) != len(mounts):
        problems.append(f"two volumes share a mount point: {', '.join(map(jinja_str, mounts))}")
    if problems:
        return {"problems": problems, "volumes": [], "names_ok": True}
    planned = []
    for v in volumes:
        default = re.sub(r"[^a-z0-9-]", "-", v["mount"].split("/")[-1].lower())
        name = jinja_str(v.get("name", default))
        planned.append(
            {
                "name": name,
                "mount": v["mount"],
                "size": int(v["size"]),
                "shared": _flag(v.get("shared", True)),
                "image": f"{volume_path}/{name}.img",
            }
        )
    names = [v["name"] for v in planned]
    names_ok = len(set(names)) == len(names) and all(NAME_RE.match(n) for n in names)
    return {"problems": [], "volumes": planned, "names_ok": names_ok}
