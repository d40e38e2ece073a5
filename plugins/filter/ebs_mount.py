# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of roles/ebs_mount's input checks: segway.cluster.ebs_mount_volume_problems
and ebs_mount_unknown_accounts. Each returns the sentences the role's assert shows, so a
check reads as one assert over a value computed here."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

DOCUMENTATION = r"""
---
name: ebs_mount_volume_problems
short_description: What is wrong with one of roles/ebs_mount's volume entries
version_added: 0.1.0
description:
  - Returns one sentence per problem of an C(ebs_mount_volumes) entry (unknown keys, a bad
    name, volume_id, device, mount_point, fstype, format, partition, mode, share,
    copy_existing, owner or group), or an empty list for a good entry.
  - The same file holds C(ebs_mount_unknown_accounts), which names the entry's owner and
    group that neither exist on the host (from C(getent)), nor are numeric ids, nor are
    created later in the run.
options:
  _input:
    description: One entry of C(ebs_mount_volumes).
    type: raw
    required: true
  keys:
    description: The keys an entry may have.
    type: list
    elements: str
    required: true
  forbidden:
    description: Mount points that would hide the system.
    type: list
    elements: str
    required: true
  account_re:
    description: The pattern of a user or group name, or a numeric id.
    type: str
    required: true
"""

EXAMPLES = r"""
ebs_mount_problems: >-
  {{ item | segway.cluster.ebs_mount_volume_problems(ebs_mount_volume_keys,
       ebs_mount_forbidden_paths, ebs_mount_account_re) }}
ebs_mount_unknown: >-
  {{ item | segway.cluster.ebs_mount_unknown_accounts(ansible_facts.getent_passwd,
       ansible_facts.getent_group, ebs_mount_owners_created_later) }}
"""

RETURN = r"""
_value:
  description: The problems, each a sentence fragment; empty when there is none.
  type: list
  elements: str
"""

NAME_RE = r"^[A-Za-z0-9_-]{1,32}$"
VOLUME_ID_RE = r"^vol-([0-9a-f]{8}|[0-9a-f]{17})$"
DEVICE_RE = r"^/dev/[A-Za-z0-9_.:/-]+$"
MOUNT_RE = r"^(/[A-Za-z0-9_.+@-]+)+$"
DOT_PART_RE = r"/\.\.?(/|$)"
PARTITION_RE = r"^[1-9][0-9]*$"
MODE_RE = r"^0?[0-7]{3,4}$"
FSTYPES = ("ext4", "xfs")
FORMATS = ("if_blank", "never")


def _identity_problems(entry: Mapping[str, Any], keys: list[str]) -> list[str]:
    """Unknown keys, the name, and where the volume is (volume_id or device)."""
    problems = []
    unknown = [key for key in entry if key not in keys]
    if unknown:
        problems.append(
            f"unknown key(s) {', '.join(map(str, unknown))}: known keys are {', '.join(keys)}"
        )
    name = entry.get("name", "")
    if not re.match(NAME_RE, str(name)):
        problems.append(f"name '{name}' must be 1-32 letters, digits, _ or -")
    if "volume_id" not in entry and "device" not in entry:
        problems.append("give volume_id (EC2) or device (a block device under /dev)")
    if "volume_id" in entry and not re.match(VOLUME_ID_RE, str(entry["volume_id"])):
        problems.append(
            f"volume_id '{entry['volume_id']}' must be vol- and 8 or 17 lowercase hex digits"
        )
    if "device" in entry and not re.match(DEVICE_RE, str(entry["device"])):
        problems.append(f"device '{entry['device']}' must be a path under /dev")
    return problems


def _mount_problems(entry: Mapping[str, Any], forbidden: list[str]) -> list[str]:
    mount = entry.get("mount_point", "")
    if not re.match(MOUNT_RE, str(mount)) or re.search(DOT_PART_RE, str(mount)):
        return [f"mount_point '{mount}' must be an absolute path without . or .. parts"]
    if mount in forbidden:
        return [f"mount_point '{mount}' would hide the system: not one of {', '.join(forbidden)}"]
    return []


def _option_problems(entry: Mapping[str, Any], account_re: str) -> list[str]:
    """fstype, format, partition, mode, the two flags, owner and group."""
    checks = [
        ("fstype", lambda v: v in FSTYPES, "is not allowed: ext4 or xfs"),
        ("format", lambda v: v in FORMATS, "is not allowed: if_blank or never"),
        ("partition", lambda v: re.match(PARTITION_RE, str(v)), "must be a number from 1"),
        (
            "mode",
            lambda v: isinstance(v, str) and re.match(MODE_RE, v),
            "must be a quoted octal string like '0755'",
        ),
        ("share", lambda v: isinstance(v, bool), "must be true or false"),
        ("copy_existing", lambda v: isinstance(v, bool), "must be true or false"),
    ] + [
        (
            key,
            lambda v: re.match(account_re, str(v)),
            "must be a user or group name (letters, digits, _ and -) or a numeric id",
        )
        for key in ("owner", "group")
    ]
    return [
        f"{key} '{entry[key]}' {message}"
        for key, good, message in checks
        if key in entry and not good(entry[key])
    ]


def ebs_mount_volume_problems(
    entry: Any, keys: Iterable[str], forbidden: Iterable[str], account_re: str
) -> list[str]:
    """The problems of one volume entry, worded as the role's messages word them."""
    if not isinstance(entry, Mapping):
        return ["must be a dict with name, volume_id or device, and mount_point"]
    return (
        _identity_problems(entry, list(keys))
        + _mount_problems(entry, list(forbidden))
        + _option_problems(entry, account_re)
    )


def ebs_mount_unknown_accounts(
    entry: Mapping[str, Any],
    users: Iterable[str],
    groups: Iterable[str],
    created_later: Iterable[str],
) -> list[str]:
    """The entry's owner and group that do not exist and are not made later in the run."""
    users, groups, later = set(users or ()), set(groups or ()), set(created_later or ())
    unknown = []
    for key, known in (("owner", users), ("group", groups)):
        if key not in entry:
            continue
        value = entry[key]
        if re.match(r"^[0-9]+$", str(value)) or value in known or value in later:
            continue
        unknown.append(f"{key} '{value}'")
    return unknown


def ebs_mount_new_owned(found: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of the volumes that ebs_mount_new_volume_owner is given to, from the
    results of validate.yml's ebs_device probe (ebs_mount_found.results): those that get
    their filesystem in this run, copy nothing onto it, and name no owner, group or mode."""
    names = []
    for result in found or ():
        entry = result.get("item") or {}
        if not result.get("formatted") or _truthy(entry.get("copy_existing")):
            continue
        if any(key in entry for key in ("owner", "group", "mode")):
            continue
        names.append(entry["name"])
    return names


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "yes", "on", "1") if value is not None else False


class FilterModule:
    def filters(self):
        return {
            "ebs_mount_volume_problems": ebs_mount_volume_problems,
            "ebs_mount_unknown_accounts": ebs_mount_unknown_accounts,
            "ebs_mount_new_owned": ebs_mount_new_owned,
        }
