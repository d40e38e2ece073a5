"""plugins/filter/ebs_mount.py: roles/ebs_mount's volume-entry checks, message by message."""

from __future__ import annotations

import pytest
from ansible_collections.segway.cluster.plugins.filter.ebs_mount import (
    FilterModule,
    ebs_mount_new_owned,
    ebs_mount_unknown_accounts,
    ebs_mount_volume_problems,
)

KEYS = [
    "name",
    "volume_id",
    "device",
    "mount_point",
    "fstype",
    "format",
    "partition",
    "owner",
    "group",
    "mode",
    "share",
    "copy_existing",
]
FORBIDDEN = ["/", "/etc", "/usr"]
ACCOUNT_RE = r"^([A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]+)$"
GOOD = {"name": "data", "volume_id": "vol-0123456789abcdef0", "mount_point": "/data"}


def problems(entry):
    return ebs_mount_volume_problems(entry, KEYS, FORBIDDEN, ACCOUNT_RE)


def test_filter_names() -> None:
    assert FilterModule().filters() == {
        "ebs_mount_volume_problems": ebs_mount_volume_problems,
        "ebs_mount_unknown_accounts": ebs_mount_unknown_accounts,
        "ebs_mount_new_owned": ebs_mount_new_owned,
    }


@pytest.mark.parametrize(
    "entry",
    [
        GOOD,
        {"name": "s", "device": "/dev/loop3", "mount_point": "/scratch", "share": False},
        GOOD | {"fstype": "xfs", "format": "never", "partition": 2, "mode": "0755"},
        GOOD | {"owner": "sgeadmin", "group": "1000", "copy_existing": True},
    ],
)
def test_a_good_entry_has_no_problem(entry) -> None:
    assert problems(entry) == []


def test_an_entry_that_is_not_a_dict_gets_one_sentence() -> None:
    assert problems("data") == ["must be a dict with name, volume_id or device, and mount_point"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"size": 3}, f"unknown key(s) size: known keys are {', '.join(KEYS)}"),
        ({"name": "a b"}, "name 'a b' must be 1-32 letters, digits, _ or -"),
        ({"name": "x" * 33}, f"name '{'x' * 33}' must be 1-32 letters, digits, _ or -"),
        (
            {"volume_id": "vol-XYZ"},
            "volume_id 'vol-XYZ' must be vol- and 8 or 17 lowercase hex digits",
        ),
        ({"device": "sdf"}, "device 'sdf' must be a path under /dev"),
        (
            {"mount_point": "data"},
            "mount_point 'data' must be an absolute path without . or .. parts",
        ),
        (
            {"mount_point": "/data/../etc"},
            "mount_point '/data/../etc' must be an absolute path without . or .. parts",
        ),
        (
            {"mount_point": "/etc"},
            "mount_point '/etc' would hide the system: not one of /, /etc, /usr",
        ),
        ({"fstype": "btrfs"}, "fstype 'btrfs' is not allowed: ext4 or xfs"),
        ({"format": "always"}, "format 'always' is not allowed: if_blank or never"),
        ({"partition": 0}, "partition '0' must be a number from 1"),
        ({"mode": 493}, "mode '493' must be a quoted octal string like '0755'"),
        ({"mode": "0999"}, "mode '0999' must be a quoted octal string like '0755'"),
        ({"share": "yes"}, "share 'yes' must be true or false"),
        ({"copy_existing": 1}, "copy_existing '1' must be true or false"),
        (
            {"owner": "bad name"},
            "owner 'bad name' must be a user or group name (letters, digits, _ and -)"
            " or a numeric id",
        ),
    ],
)
def test_each_bad_value_is_named(change, expected) -> None:
    assert problems(GOOD | change) == [expected]


def test_a_missing_name_source_and_mount_are_all_reported() -> None:
    assert problems({}) == [
        "name '' must be 1-32 letters, digits, _ or -",
        "give volume_id (EC2) or device (a block device under /dev)",
        "mount_point '' must be an absolute path without . or .. parts",
    ]


def test_unknown_accounts_skip_ids_existing_and_later_ones() -> None:
    users, groups = {"root": [], "admin": []}, {"root": [], "staff": []}
    entry = {"owner": "sgeadmin", "group": "staff"}
    assert ebs_mount_unknown_accounts(entry, users, groups, []) == ["owner 'sgeadmin'"]
    assert ebs_mount_unknown_accounts(entry, users, groups, ["sgeadmin"]) == []
    assert ebs_mount_unknown_accounts({"owner": "1001", "group": 1002}, users, groups, []) == []
    assert ebs_mount_unknown_accounts({"owner": "x", "group": "y"}, users, groups, []) == [
        "owner 'x'",
        "group 'y'",
    ]
    assert ebs_mount_unknown_accounts({"name": "data"}, users, groups, []) == []


def test_new_owner_goes_only_to_new_plain_volumes() -> None:
    def found(formatted: bool, **entry: object) -> dict:
        return {"formatted": formatted, "copied": False, "item": {"name": "v", **entry}}

    assert ebs_mount_new_owned([found(True, mount_point="/data")]) == ["v"]
    # held a filesystem before: never changed
    assert ebs_mount_new_owned([found(False, mount_point="/data")]) == []
    # /home and the build volume copy what was there, owners included
    assert ebs_mount_new_owned([found(True, copy_existing=True)]) == []
    assert ebs_mount_new_owned([found(True, copy_existing="yes")]) == []
    assert ebs_mount_new_owned([found(True, copy_existing=False)]) == ["v"]
    # an owner, group or mode of its own wins
    for key in ("owner", "group", "mode"):
        assert ebs_mount_new_owned([found(True, **{key: "0700" if key == "mode" else "x"})]) == []
    # a skipped probe (no keys) and no results at all
    assert ebs_mount_new_owned([{"item": {"name": "v"}, "skipped": True}]) == []
    assert ebs_mount_new_owned(None) == []
