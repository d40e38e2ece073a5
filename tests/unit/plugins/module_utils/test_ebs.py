"""Unit tests of plugins/module_utils/ebs.py: device resolution and the format decision.

Resolution runs against fake /dev and /sys trees (tests/unit/fixtures/ebs/trees.json) for
Nitro (NVMe by-id links and sysfs serials), Xen (/dev/sdf shown as /dev/xvdf), a missing
device, and the cases with two candidates. The format decision runs on probe output
captured from util-linux on loop devices.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ansible_collections.segway.cluster.plugins.module_utils import ebs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ebs"
TREES = json.loads((FIXTURES / "trees.json").read_text())
VOLUME = "vol-0123456789abcdef0"


def build_tree(root: Path, case: str) -> str:
    spec = TREES[case]
    for path, text in spec["files"].items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for path, link in spec["links"].items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link, target)
    return str(root)


@pytest.fixture
def tree(tmp_path: Path):
    def make(case: str) -> str:
        return build_tree(tmp_path / case, case)

    return make


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


# --------------------------------------------------------------------------- volume ids


@pytest.mark.parametrize(
    ("volume_id", "serial"),
    [
        ("vol-0123456789abcdef0", "vol0123456789abcdef0"),
        ("vol-1234abcd", "vol1234abcd"),
        ("vol0123456789abcdef0", "vol0123456789abcdef0"),
    ],
)
def test_volume_serial(volume_id: str, serial: str) -> None:
    assert ebs.volume_serial(volume_id) == serial


@pytest.mark.parametrize(
    "bad", ["vol-XYZ", "vol-0123", "0123456789abcdef0", "vol-0123456789ABCDEF0", ""]
)
def test_volume_serial_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an EBS volume id"):
        ebs.volume_serial(bad)


@pytest.mark.parametrize(
    ("device", "names"),
    [
        ("/dev/sdf", ["/dev/sdf", "/dev/xvdf"]),
        ("/dev/xvdf", ["/dev/xvdf", "/dev/sdf"]),
        ("/dev/sdba", ["/dev/sdba", "/dev/xvdba"]),
        ("/dev/vdb", ["/dev/vdb"]),
        ("/dev/nvme1n1", ["/dev/nvme1n1"]),
        ("/dev/sdf1", ["/dev/sdf1"]),
    ],
)
def test_xen_names(device: str, names: list[str]) -> None:
    assert ebs.xen_names(device) == names


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    ("case", "volume_id", "device", "expected", "how"),
    [
        ("nitro", VOLUME, None, "/dev/nvme1n1", "udev link"),
        ("nitro", VOLUME, "/dev/sdf", "/dev/nvme1n1", "udev link"),
        ("nitro_no_udev", VOLUME, None, "/dev/nvme1n1", "serial vol0123456789abcdef0"),
        ("nitro_ec2_utils", VOLUME, "/dev/sdf", "/dev/nvme1n1", "udev link"),
        ("xen", None, "/dev/sdf", "/dev/xvdf", "device name /dev/xvdf"),
        ("xen", None, "/dev/xvdf", "/dev/xvdf", "device name /dev/xvdf"),
        # On Xen the volume id shows nowhere: the attachment name decides.
        ("xen", VOLUME, "/dev/sdf", "/dev/xvdf", "device name /dev/xvdf"),
        ("partitioned", VOLUME, None, "/dev/nvme1n1", "serial"),
    ],
)
def test_resolve(tree, case, volume_id, device, expected, how) -> None:  # noqa: PLR0917
    root = tree(case)
    found, found_how = ebs.resolve("data", volume_id, device, dev_root=root, sys_root=root)
    assert found == expected
    assert how in found_how


def test_root_volume_is_never_taken_for_the_data_volume(tree) -> None:
    root = tree("nitro")
    found, _ = ebs.resolve("root", "vol-0aaaaaaaaaaaaaaaa", None, dev_root=root, sys_root=root)
    assert found == "/dev/nvme0n1"  # the disk, not its partition's by-id link


@pytest.mark.parametrize(
    ("case", "volume_id", "device", "names"),
    [
        ("nitro_wrong_name", VOLUME, "/dev/sdf", ["/dev/nvme1n1", "/dev/nvme2n1"]),
        ("nitro_two_serials", VOLUME, None, ["/dev/nvme1n1", "/dev/nvme2n1"]),
        ("xen_both_names", None, "/dev/sdf", ["/dev/sdf", "/dev/xvdf"]),
    ],
)
def test_two_candidates_are_refused(tree, case, volume_id, device, names) -> None:
    root = tree(case)
    with pytest.raises(ebs.AmbiguousDevice) as error:
        ebs.resolve("data", volume_id, device, dev_root=root, sys_root=root)
    message = str(error.value)
    assert "volume 'data'" in message
    assert "more than one block device" in message
    for name in names:
        assert name in message


def test_missing_device_names_the_volume_and_what_was_seen(tree) -> None:
    root = tree("nitro")
    with pytest.raises(ebs.DeviceNotFound) as error:
        ebs.resolve("archive", "vol-0fffffffffffffff1", None, dev_root=root, sys_root=root)
    message = str(error.value)
    assert "volume 'archive' (vol-0fffffffffffffff1) has no block device" in message
    assert "nvme-Amazon_Elastic_Block_Store_vol0fffffffffffffff1" in message
    assert "nvme1n1 (serial vol0123456789abcdef0)" in message


def test_on_nitro_a_device_name_alone_is_not_trusted(tree) -> None:
    """The volume is not attached yet; /dev/sdf exists but is not it: keep waiting."""
    root = tree("nitro_not_yet")
    with pytest.raises(ebs.DeviceNotFound) as error:
        ebs.resolve("data", VOLUME, "/dev/sdf", dev_root=root, sys_root=root)
    assert "ignored /dev/sdf" in str(error.value)


def test_xen_missing_attachment(tree) -> None:
    root = tree("xen")
    with pytest.raises(ebs.DeviceNotFound, match=r"looked for .*/dev/sdg, /dev/xvdg"):
        ebs.resolve("data", None, "/dev/sdg", dev_root=root, sys_root=root)


def test_neither_id_nor_device(tree) -> None:
    root = tree("xen")
    with pytest.raises(ebs.DeviceError, match=r"give volume_id .* or device"):
        ebs.resolve("data", None, None, dev_root=root, sys_root=root)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1


def test_wait_times_out_naming_the_volume(tree) -> None:
    root = tree("nitro")
    clock = FakeClock()
    with pytest.raises(ebs.DeviceNotFound, match=r"volume 'late' .*\(waited 5 s\)"):
        ebs.wait_for_device(
            "late",
            "vol-0fffffffffffffff1",
            None,
            timeout=5,
            dev_root=root,
            sys_root=root,
            sleep=clock.sleep,
            clock=clock.time,
        )
    assert clock.sleeps == 5


def test_wait_returns_once_the_device_appears(tmp_path) -> None:
    root = build_tree(tmp_path / "t", "nitro_not_yet")
    clock = FakeClock()

    def attach_on_third_sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.sleeps == 3:
            (Path(root) / "dev" / "nvme1n1").write_text("")
            serial = Path(root) / "sys" / "block" / "nvme1n1" / "device" / "serial"
            serial.parent.mkdir(parents=True)
            serial.write_text("vol0123456789abcdef0\n")

    found = ebs.wait_for_device(
        "data",
        VOLUME,
        None,
        timeout=60,
        dev_root=root,
        sys_root=root,
        sleep=attach_on_third_sleep,
        clock=clock.time,
    )
    assert found[0] == "/dev/nvme1n1"
    assert clock.sleeps == 3


def test_wait_does_not_wait_on_two_candidates(tree) -> None:
    root = tree("xen_both_names")
    clock = FakeClock()
    with pytest.raises(ebs.AmbiguousDevice):
        ebs.wait_for_device(
            "data", None, "/dev/sdf", timeout=60, dev_root=root, sys_root=root,
            sleep=clock.sleep, clock=clock.time,
        )  # fmt: skip
    assert clock.sleeps == 0


def test_partitions_from_sysfs(tree) -> None:
    root = tree("partitioned")
    assert ebs.partitions("/dev/nvme1n1", sys_root=root) == [(1, "nvme1n1p1")]
    assert ebs.partitions("/dev/nvme2n1", sys_root=root) == [(1, "nvme2n1p1"), (2, "nvme2n1p2")]
    assert ebs.partitions("/dev/nvme9n1", sys_root=root) == []


# --------------------------------------------------------------------------- probes


def content(wipefs: str, blkid: str = "", parts=(), nonzero: bool = False) -> ebs.Content:
    return ebs.Content(
        signatures=ebs.parse_wipefs(fixture_text(wipefs)),
        probe=ebs.parse_blkid(fixture_text(blkid)) if blkid else {},
        partitions=list(parts),
        nonzero=nonzero,
    )


def test_parsers() -> None:
    assert ebs.parse_wipefs(fixture_text("wipefs_blank.json")) == []
    assert ebs.parse_wipefs("") == []
    gpt = ebs.parse_wipefs(fixture_text("wipefs_gpt.json"))
    assert [s["type"] for s in gpt] == ["gpt", "gpt", "PMBR"]
    assert ebs.parse_blkid(fixture_text("blkid_ext4.txt"))["TYPE"] == "ext4"


def test_content_kinds() -> None:
    blank = content("wipefs_blank.json")
    assert blank.blank
    assert blank.fstype == ""
    ext4 = content("wipefs_ext4.json", "blkid_ext4.txt")
    assert not ext4.blank
    assert ext4.fstype == "ext4"
    assert ext4.partition_table == ""
    gpt = content("wipefs_gpt.json", "blkid_gpt.txt")
    assert not gpt.blank
    assert gpt.fstype == ""
    assert gpt.partition_table == "gpt"
    # No known signature, but data in the first MiB: not blank either.
    data = content("wipefs_blank.json", nonzero=True)
    assert not data.blank
    assert "data in its first MiB" in data.summary()


def test_all_zero() -> None:
    assert ebs.all_zero(b"\0" * 4096)
    assert not ebs.all_zero(b"\0" * 4095 + b"\1")


# --------------------------------------------------------------------------- decisions


def no_partition_probe(path: str) -> ebs.Content:
    raise AssertionError(f"no partition should be probed, got {path}")


def decide(disk_content: ebs.Content, **options) -> ebs.Plan:
    args = {
        "fstype": "ext4",
        "format_policy": "if_blank",
        "partition": None,
        "partition_content": no_partition_probe,
    }
    args.update(options)
    return ebs.plan("data", "/dev/nvme1n1", disk_content, **args)


def test_blank_disk_is_formatted_with_if_blank() -> None:
    decision = decide(content("wipefs_blank.json"), fstype="xfs")
    assert decision == ebs.Plan("/dev/nvme1n1", "xfs", True, "blank disk")


def test_blank_disk_with_format_never_is_an_error() -> None:
    with pytest.raises(ebs.DeviceError, match="is blank and format is 'never'"):
        decide(content("wipefs_blank.json"), format_policy="never")


def test_existing_filesystem_is_mounted_not_formatted() -> None:
    decision = decide(content("wipefs_ext4.json", "blkid_ext4.txt"))
    assert decision == ebs.Plan("/dev/nvme1n1", "ext4", False, "whole-disk filesystem")


def test_other_filesystem_type_is_refused_not_reformatted() -> None:
    with pytest.raises(ebs.DeviceError, match="holds a ext4 filesystem but fstype is 'xfs'"):
        decide(content("wipefs_ext4.json", "blkid_ext4.txt"), fstype="xfs")


def test_partition_table_without_partitions_is_never_formatted() -> None:
    with pytest.raises(ebs.DeviceError) as error:
        decide(content("wipefs_gpt.json", "blkid_gpt.txt"))
    assert "partition table gpt with 0 partitions" in str(error.value)
    assert "never formatted" in str(error.value)


def test_one_partition_mounts_that_partition() -> None:
    probed = []

    def partition_probe(path: str) -> ebs.Content:
        probed.append(path)
        return content("wipefs_ext4.json", "blkid_ext4.txt")

    gpt = content("wipefs_gpt.json", "blkid_gpt.txt", parts=[(1, "nvme1n1p1")])
    decision = decide(gpt, partition_content=partition_probe)
    assert decision == ebs.Plan("/dev/nvme1n1p1", "ext4", False, "partition 1 of /dev/nvme1n1")
    assert probed == ["/dev/nvme1n1p1"]


def test_blank_partition_is_not_formatted() -> None:
    gpt = content("wipefs_gpt.json", "blkid_gpt.txt", parts=[(1, "nvme1n1p1")])
    with pytest.raises(
        ebs.DeviceError, match=r"partition 1 \(/dev/nvme1n1p1\) holds no filesystem"
    ):
        decide(gpt, partition_content=lambda path: content("wipefs_blank.json"))


def test_several_partitions_need_a_choice() -> None:
    parts = [(1, "nvme1n1p1"), (2, "nvme1n1p2")]
    gpt = content("wipefs_gpt.json", "blkid_gpt.txt", parts=parts)
    with pytest.raises(ebs.DeviceError, match=r"with 2 partitions .* set partition: N"):
        decide(gpt)
    decision = decide(
        gpt,
        partition=2,
        partition_content=lambda path: content("wipefs_ext4.json", "blkid_ext4.txt"),
    )
    assert decision.device == "/dev/nvme1n1p2"
    with pytest.raises(ebs.DeviceError, match="partition 3 does not exist"):
        decide(gpt, partition=3)


def test_unknown_signature_is_never_formatted() -> None:
    lvm = ebs.Content(
        signatures=[{"offset": "0x218", "type": "LVM2_member", "uuid": "x", "label": ""}],
        probe={"TYPE": "LVM2_member"},
        partitions=[],
        nonzero=True,
    )
    with pytest.raises(ebs.DeviceError, match="holds a LVM2_member filesystem"):
        decide(lvm)
    raw = content("wipefs_blank.json", nonzero=True)
    with pytest.raises(ebs.DeviceError, match=r"is not blank .* never formatted"):
        decide(raw)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fstype": "btrfs"}, "fstype 'btrfs' is not allowed: use one of ('ext4', 'xfs')"),
        ({"format_policy": "always"}, "format 'always' is not allowed"),
    ],
)
def test_bad_options(options, message) -> None:
    with pytest.raises(ebs.DeviceError) as error:
        decide(content("wipefs_blank.json"), **options)
    assert message in str(error.value)


def test_mkfs_commands_have_no_force_flag() -> None:
    assert ebs.mkfs_command("ext4", "/dev/nvme1n1", "results") == [
        "mkfs.ext4",
        "-q",
        "-L",
        "results",
        "/dev/nvme1n1",
    ]
    assert ebs.mkfs_command("xfs", "/dev/xvdf", "a-very-long-name") == [
        "mkfs.xfs",
        "-L",
        "a-very-long-",
        "/dev/xvdf",
    ]
    for argv in (ebs.mkfs_command("ext4", "/dev/x"), ebs.mkfs_command("xfs", "/dev/x")):
        assert not {"-f", "-F", "--force"} & set(argv)


# --------------------------------------------------------------------------- copy_existing


def pending(label: str = ebs.COPY_PENDING_LABEL) -> ebs.Content:
    """An ext4 filesystem as blkid shows it, with this label."""
    probe = ebs.parse_blkid(fixture_text("blkid_ext4.txt"))
    probe["LABEL"] = label
    return ebs.Content(
        signatures=ebs.parse_wipefs(fixture_text("wipefs_ext4.json")),
        probe=probe,
        partitions=[],
        nonzero=True,
    )


def test_pending_label_fits_xfs() -> None:
    assert len(ebs.COPY_PENDING_LABEL) <= 12


def test_an_unfinished_copy_is_finished_when_copying() -> None:
    decision = decide(pending(), copy=True)
    assert decision == ebs.Plan("/dev/nvme1n1", "ext4", False, "unfinished copy", finish_copy=True)
    assert "unfinished copy" in pending().summary()


@pytest.mark.parametrize("options", [{}, {"copy": True, "format_policy": "never"}])
def test_an_unfinished_copy_is_never_mounted_as_it_is(options) -> None:
    with pytest.raises(ebs.DeviceError) as error:
        decide(pending(), **options)
    assert "has not finished copying" in str(error.value)
    assert "copy_existing: true" in str(error.value)


def test_a_filesystem_with_another_label_is_never_copied_onto() -> None:
    decision = decide(pending("home"), copy=True)
    assert decision == ebs.Plan("/dev/nvme1n1", "ext4", False, "whole-disk filesystem")
    assert not decision.finish_copy


def test_a_blank_disk_to_copy_onto_is_formatted() -> None:
    decision = decide(content("wipefs_blank.json"), copy=True)
    assert decision.format
    assert not decision.finish_copy


def test_copy_and_relabel_commands() -> None:
    assert ebs.copy_command("/home", "/run/x") == [
        "cp",
        "-a",
        "--remove-destination",
        "--",
        "/home/.",
        "/run/x",
    ]
    assert ebs.copy_command("/home/", "/run/x")[-2] == "/home/."
    assert ebs.relabel_command("ext4", "/dev/x", "a-label-of-seventeen") == [
        "e2label",
        "/dev/x",
        "a-label-of-seven",
    ]
    assert ebs.relabel_command("xfs", "/dev/x", "scratch") == [
        "xfs_admin",
        "-L",
        "scratch",
        "/dev/x",
    ]
    assert ebs.relabel_command("xfs", "/dev/x", None) == ["xfs_admin", "-L", "--", "/dev/x"]
    assert ebs.relabel_command("ext4", "/dev/x", None) == ["e2label", "/dev/x", ""]


MOUNTINFO = """\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
97 22 7:3 / /run/segway-ebs-copy.ab12 rw,relatime shared:50 - ext4 /dev/loop3 rw
98 22 7:3 / /mnt/with\\040space rw,relatime shared:51 - ext4 /dev/loop3 rw
99 22 7:30 / /other rw,relatime shared:52 - ext4 /dev/loop30 rw
"""


def test_mount_points_from_mountinfo() -> None:
    assert ebs.mount_points("7:3", MOUNTINFO) == ["/run/segway-ebs-copy.ab12", "/mnt/with space"]
    assert ebs.mount_points("7:4", MOUNTINFO) == []
    assert ebs.mount_points("7:3", "garbage\n\n") == []
