"""Unit tests of plugins/module_utils/cluster_volumes.py: launch's volumes input, the
cluster's /home volume, and the choice of a free device name."""

from __future__ import annotations

import pytest
from ansible_collections.segway.cluster.plugins.module_utils.cluster_volumes import (
    DEVICES,
    free_device,
    mount_problem,
    plan_volumes,
)

VOL = "vol-0123456789abcdef0"
SNAP = "snap-0123456789abcdef0"


def plan(volumes, home=50, build=0):
    """Without the build volume unless asked, so data volumes follow /home at [1]."""
    return plan_volumes(volumes, "alpha", home, build)


def test_home_volume_always_first():
    result = plan([{"size": 2, "mount": "/data"}])
    assert result["problems"] == []
    home, data = result["volumes"]
    assert home == {
        "name": "home",
        "tag_name": "alpha-home",
        "mount": "/home",
        "shared": True,
        "type": "gp3",
        "size": 50,
        "create": True,
        "format": "if_blank",
        "home": True,
    }
    assert data["name"] == "data"
    assert data["tag_name"] == "alpha-data"


@pytest.mark.parametrize(
    ("entry", "create", "fmt"),
    [
        ({"size": 2, "mount": "/data"}, True, "if_blank"),
        ({"snapshot": SNAP, "mount": "/genomes"}, True, "never"),
        ({"snapshot": SNAP, "size": 9, "mount": "/genomes", "partition": 1}, True, "never"),
        ({"id": VOL, "mount": "/results"}, False, "never"),
        ({"id": VOL, "mount": "/results", "fstype": "xfs", "partition": 2}, False, "never"),
    ],
)
def test_only_volumes_created_empty_may_be_formatted(entry, create, fmt):
    result = plan([entry])
    assert result["problems"] == []
    volume = result["volumes"][1]
    assert (volume["create"], volume["format"]) == (create, fmt)


def test_performance_and_filesystem_pass_through():
    entry = {"size": 100, "mount": "/fast", "type": "gp3", "iops": 6000, "throughput": "500"}
    volume = plan([{**entry, "fstype": "xfs", "shared": "no"}])["volumes"][1]
    assert volume["iops"] == 6000
    assert volume["throughput"] == 500
    assert volume["fstype"] == "xfs"
    assert volume["shared"] is False
    io2 = plan([{"size": 10, "mount": "/db", "type": "io2", "iops": 4000}])["volumes"][1]
    assert io2["iops"] == 4000


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"size": 2, "mount": "/home"}, "mount '/home' is a system directory or the cluster's own"),
        ({"size": 2, "mount": "/home/data"}, "mount '/home/data' is a system directory"),
        ({"size": 2, "mount": "/segway-build"}, "mount '/segway-build' is a system directory"),
        ({"size": 2, "mount": "/etc"}, "mount '/etc' is a system directory"),
        ({"size": 2, "mount": "/usr/local"}, "mount '/usr/local' is a system directory"),
        ({"size": 2, "mount": "/data/../etc"}, "must not contain '.' or '..' components"),
        ({"size": 2, "mount": "/data/./x"}, "must not contain '.' or '..' components"),
        ({"size": 2, "mount": "data"}, "mount 'data' must be an absolute path"),
        ({"size": 2, "mount": "/da ta"}, "must be an absolute path"),
        ({"size": 2}, "mount '' must be an absolute path"),
        ({"size": 2, "mount": "/data", "name": "home"}, "name 'home' is the cluster's own"),
        ({"size": 2, "mount": "/data", "name": "Data!"}, "name 'Data!' must be 1-32"),
        ({"size": 0, "mount": "/data"}, "size '0' must be whole GiB from 1 to 65536"),
        ({"size": True, "mount": "/data"}, "size 'True' must be whole GiB"),
        ({"mount": "/data"}, "needs one of id, snapshot or size"),
        ({"id": "vol-1", "mount": "/data"}, "id 'vol-1' is not a volume id"),
        (
            {"id": VOL, "size": 3, "mount": "/data"},
            "id attaches an existing volume and excludes size",
        ),
        ({"snapshot": "snap-x", "mount": "/data"}, "snapshot 'snap-x' is not a snapshot id"),
        ({"size": 2, "mount": "/data", "type": "gp9"}, "type 'gp9' is not one of"),
        ({"size": 2, "mount": "/data", "type": "io1"}, "type io1 needs iops"),
        ({"size": 2, "mount": "/data", "type": "gp2", "iops": 3000}, "iops applies to type"),
        ({"size": 2, "mount": "/data", "iops": 1000}, "below gp3's 3000 baseline"),
        ({"size": 2, "mount": "/data", "iops": "lots"}, "iops 'lots' must be a whole number"),
        ({"size": 2, "mount": "/data", "type": "st1", "throughput": 500}, "throughput applies"),
        ({"size": 2, "mount": "/data", "throughput": 9000}, "throughput '9000' must be whole"),
        ({"size": 2, "mount": "/data", "fstype": "btrfs"}, "fstype 'btrfs' is not one of ext4"),
        ({"size": 2, "mount": "/data", "partition": 1}, "partition applies to a volume given"),
        ({"id": VOL, "mount": "/data", "partition": 0}, "partition '0' must be a partition"),
        ({"size": 2, "mount": "/data", "shared": "maybe"}, "shared 'maybe' must be true or false"),
        ({"size": 2, "mount": "/data", "colour": "red"}, "unknown key(s) colour"),
    ],
)
def test_bad_entries_name_the_entry_value_and_rule(entry, expected):
    result = plan([entry])
    assert result["volumes"] == []
    assert any(expected in p for p in result["problems"]), result["problems"]
    assert all(p.startswith("volumes[0] ") for p in result["problems"])


@pytest.mark.parametrize("volumes", ["/data", {"size": 2, "mount": "/data"}, 3, None])
def test_volumes_must_be_a_list(volumes):
    result = plan(volumes)
    assert result["volumes"] == []
    assert any(p.startswith("volumes must be a list") for p in result["problems"])


@pytest.mark.parametrize("home", [0, -1, "big", 70000, True])
def test_home_volume_size_checked(home):
    result = plan([], home=home)
    assert result["problems"] == [f"home_volume_size '{home}' must be whole GiB from 1 to 65536"]


def test_duplicates_and_too_many():
    twice = plan([{"size": 1, "mount": "/a"}, {"size": 1, "mount": "/a", "name": "b"}])
    assert "volumes: two volumes have the same mount point: /a" in twice["problems"]
    names = plan([{"size": 1, "mount": "/x/data"}, {"size": 1, "mount": "/y/data"}])
    assert "volumes: two volumes have the same name: data" in names["problems"]
    ids = plan([{"id": VOL, "mount": "/a"}, {"id": VOL, "mount": "/b"}])
    assert f"volumes: two volumes have the same volume id: {VOL}" in ids["problems"]
    many = plan([{"size": 1, "mount": f"/d{i}"} for i in range(len(DEVICES))])
    assert any("too many" in p for p in many["problems"])


def test_build_volume_follows_home_by_default():
    result = plan_volumes([{"size": 2, "mount": "/data"}], "alpha", 50)
    assert result["problems"] == []
    home, build, data = result["volumes"]
    assert home["mount"] == "/home"
    assert build == {
        "name": "segway-build",
        "tag_name": "alpha-segway-build",
        "mount": "/segway-build",
        # Not a data volume: roles/nfs exports the build path (read-only) by itself.
        "shared": False,
        "type": "gp3",
        "size": 20,
        "create": True,
        "format": "if_blank",
        "home": False,
    }
    assert data["name"] == "data"


def test_build_volume_size_zero_means_none():
    result = plan([{"size": 2, "mount": "/data"}], build=0)
    assert [v["mount"] for v in result["volumes"]] == ["/home", "/data"]
    assert plan([], build="35")["volumes"][1]["size"] == 35


@pytest.mark.parametrize("build", [-1, "big", 70000, True, 2.5])
def test_build_volume_size_checked(build):
    result = plan([], build=build)
    assert result["problems"] == [
        f"build_volume_size '{build}' must be whole GiB from 1 to 65536, or 0 for no build "
        "volume (Segway and GMTK on the master's root disk, rebuilt by every launch of a new "
        "master)"
    ]


def test_build_volume_name_and_device_are_the_clusters_own():
    clash = plan([{"size": 1, "mount": "/b", "name": "segway-build"}], build=20)
    assert any("name 'segway-build' is the cluster's own" in p for p in clash["problems"])
    # One device name fewer for data volumes when the build volume takes one.
    fits = [{"size": 1, "mount": f"/d{i}"} for i in range(len(DEVICES) - 1)]
    assert plan(fits, build=0)["problems"] == []
    crowded = plan(fits, build=20)["problems"]
    assert crowded == [
        f"volumes: {len(DEVICES) - 1} volumes are too many: at most {len(DEVICES) - 2} "
        "besides the cluster's own /home and /segway-build"
    ]


def test_mount_problem_accepts_ordinary_paths():
    for path in ("/data", "/mnt/genomes", "/scratch2", "/data.v2", "/opt/work"):
        assert mount_problem(path) is None, path


def test_free_device_skips_used_slots_in_either_spelling():
    assert free_device([]) == "/dev/sdf"
    assert free_device(["/dev/xvda", "/dev/sdf"]) == "/dev/sdg"
    assert free_device(["/dev/xvdf", "/dev/sdg"], ["/dev/sdh"]) == "/dev/sdi"
    assert free_device(list(DEVICES)) is None
    assert free_device([], list(DEVICES)) is None
