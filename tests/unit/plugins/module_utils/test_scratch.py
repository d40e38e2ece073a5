"""Unit tests of plugins/module_utils/scratch.py: which disks become scratch space.

Instance store is found by its identity (NVMe model or udev by-id link), never because a
disk is blank; a disk with any EBS identity, or in use, is never taken. The trees below are
fake /sys/block and /dev/disk/by-id as a Nitro instance shows them.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from ansible_collections.segway.cluster.plugins.module_utils import scratch

IS = "Amazon EC2 NVMe Instance Storage"
EBS = "Amazon Elastic Block Store"


def make_tree(root: Path, disks: dict[str, dict], links: dict[str, str]) -> str:
    """Fake /sys/block/<name> and /dev/disk/by-id/<link> -> ../../<name>."""
    for index, (name, spec) in enumerate(disks.items()):
        base = root / "sys" / "block" / name
        (base / "device").mkdir(parents=True)
        (base / "holders").mkdir()
        (base / "dev").write_text(f"259:{index * 10}\n")
        (base / "ro").write_text("1\n" if spec.get("ro") else "0\n")
        if "model" in spec:
            (base / "device" / "model").write_text(spec["model"] + "    \n")
        if "serial" in spec:
            (base / "device" / "serial").write_text(spec["serial"] + "\n")
        for number in range(1, spec.get("partitions", 0) + 1):
            part = base / f"{name}p{number}"
            part.mkdir()
            (part / "partition").write_text(f"{number}\n")
            (part / "dev").write_text(f"259:{index * 10 + number}\n")
        for holder in spec.get("holders", []):
            (base / "holders" / holder).mkdir()
        (root / "dev").mkdir(exist_ok=True)
        (root / "dev" / name).touch()
    by_id = root / "dev" / "disk" / "by-id"
    by_id.mkdir(parents=True, exist_ok=True)
    for link, name in links.items():
        (by_id / link).symlink_to(f"../../{name}")
    return str(root)


def nitro(tmp_path: Path, **extra: dict) -> list[scratch.Disk]:
    disks = {
        "nvme0n1": {"model": EBS, "serial": "vol0123456789abcdef0", "partitions": 1},
        "nvme1n1": {"model": IS, "serial": "AWS1111"},
        "nvme2n1": {"model": IS, "serial": "AWS2222"},
        **extra,
    }
    links = {
        "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0": "nvme0n1",
        "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1111": "nvme1n1",
        "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS2222": "nvme2n1",
    }
    root = make_tree(tmp_path, disks, links)
    return scratch.read_disks(sys_root=root, dev_root=root)


def test_read_disks_sees_model_serial_links_and_partitions(tmp_path: Path) -> None:
    disks = {d.name: d for d in nitro(tmp_path)}
    assert disks["nvme1n1"].model == IS
    assert disks["nvme1n1"].links == ["nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1111"]
    assert disks["nvme0n1"].partitions == ["259:1"]
    assert disks["nvme0n1"].serial == "vol0123456789abcdef0"


def test_two_instance_store_disks_are_chosen_the_root_ebs_disk_is_not(tmp_path: Path) -> None:
    chosen = scratch.select(nitro(tmp_path), mounted={"259:1"})
    assert chosen.chosen == ["/dev/nvme1n1", "/dev/nvme2n1"]
    # The EBS root disk claims no instance-store identity: it is not even a candidate.
    assert chosen.refused == {}
    assert chosen.found_by["/dev/nvme1n1"] == f"model {IS!r}"


def test_found_by_link_alone_as_the_tests_stand_in(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"loop3": {}}, {"nvme-Amazon_EC2_NVMe_Instance_Storage_T1": "loop3"})
    chosen = scratch.select(scratch.read_disks(root, root))
    assert chosen.chosen == ["/dev/loop3"]
    assert chosen.found_by["/dev/loop3"].startswith("by-id link nvme-Amazon_EC2_NVMe_Instance")


def test_blank_disk_without_identity_is_never_taken(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"loop4": {}, "xvdb": {"model": "Virtual disk"}}, {})
    chosen = scratch.select(scratch.read_disks(root, root))
    assert chosen.chosen == []
    assert chosen.refused == {}


@pytest.mark.parametrize(
    ("spec", "links", "reason"),
    [
        # The test cluster's decoy: an instance-store link AND an EBS link on one blank disk.
        (
            {},
            {
                "nvme-Amazon_EC2_NVMe_Instance_Storage_X": "loop5",
                "nvme-Amazon_Elastic_Block_Store_vol0b0b0b0b": "loop5",
            },
            "EBS identity (by-id link nvme-Amazon_Elastic_Block_Store_vol0b0b0b0b)",
        ),
        (
            {"model": EBS},
            {"nvme-Amazon_EC2_NVMe_Instance_Storage_X": "loop5"},
            f"EBS identity (model {EBS!r})",
        ),
        (
            {"serial": "vol-0123456789abcdef0"},
            {"nvme-Amazon_EC2_NVMe_Instance_Storage_X": "loop5"},
            "EBS volume serial",
        ),
        ({"model": IS, "ro": True}, {}, "read-only"),
        ({"model": IS, "partitions": 2}, {}, "has partitions"),
        ({"model": IS, "holders": ["dm-0"]}, {}, "is used by dm-0"),
    ],
)
def test_refused(tmp_path: Path, spec: dict, links: dict, reason: str) -> None:
    root = make_tree(tmp_path, {"loop5": spec}, links)
    chosen = scratch.select(scratch.read_disks(root, root))
    assert chosen.chosen == []
    assert reason in chosen.refused["/dev/loop5"]


def test_mounted_or_swap_disks_are_refused(tmp_path: Path) -> None:
    disks = nitro(tmp_path)
    mountinfo = "25 1 259:10 / /mnt rw,relatime shared:1 - ext4 /dev/nvme1n1 rw\n"
    chosen = scratch.select(
        disks,
        mounted=scratch.mounted_majmins(mountinfo),
        swaps=scratch.swap_devices(
            "Filename Type Size Used Priority\n/dev/nvme2n1 partition 100 0 -2\n"
        ),
    )
    assert chosen.chosen == []
    assert chosen.refused == {"/dev/nvme1n1": "is mounted", "/dev/nvme2n1": "is used as swap"}


def test_own_array_from_an_earlier_boot_is_stopped_not_refused(tmp_path: Path) -> None:
    disks = nitro(tmp_path)
    for disk in disks:
        if disk.model == IS:
            disk.holders = ["md127"]
    chosen = scratch.select(disks, own_holders=["md127"])
    assert chosen.chosen == ["/dev/nvme1n1", "/dev/nvme2n1"]
    assert chosen.own_holders == ["md127"]
    assert scratch.select(disks).chosen == []


def test_other_models(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"vdb": {"model": "Local SSD"}}, {})
    assert scratch.select(scratch.read_disks(root, root), models=["Local SSD"]).chosen == [
        "/dev/vdb"
    ]
    assert scratch.by_id_prefix(IS) == "nvme-Amazon_EC2_NVMe_Instance_Storage_"


def test_commands() -> None:
    assert scratch.mkfs_command("ext4", "/dev/x")[0] == "mkfs.ext4"
    assert scratch.mkfs_command("xfs", "/dev/x")[:3] == ["mkfs.xfs", "-f", "-q"]
    with pytest.raises(scratch.ScratchError):
        scratch.mkfs_command("btrfs", "/dev/x")
    md = scratch.md_create_command(["/dev/a", "/dev/b"])
    assert md[:3] == ["mdadm", "--create", scratch.MD_DEVICE]
    assert "--level=0" in md
    assert "--raid-devices=2" in md
    assert md[-2:] == ["/dev/a", "/dev/b"]


def test_mounted_source() -> None:
    info = (
        "30 1 0:40 / / rw - overlay overlay rw\n"
        "31 30 7:3 / /scratch rw,noatime shared:2 - ext4 /dev/loop3 rw\n"
        "32 30 0:41 / /scratch\\040x rw - tmpfs tmpfs rw\n"
    )
    assert scratch.mounted_source("/scratch", info) == ("7:3", "ext4")
    assert scratch.mounted_source("/scratch x", info) == ("0:41", "tmpfs")
    assert scratch.mounted_source("/data", info) is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"path": "relative"}, "absolute path"),
        ({"path": "/tmp"}, "absolute path"),
        ({"path": "/"}, "absolute path"),
        ({"fstype": "btrfs"}, "fstype 'btrfs'"),
        ({"users": ["Root!"]}, "users"),
        ({"users": ["tmp"]}, "users"),
        ({"models": []}, "models"),
    ],
)
def test_check_config_refuses(config: dict, message: str) -> None:
    with pytest.raises(scratch.ScratchError, match=message):
        scratch.check_config(config)


def test_check_config_defaults() -> None:
    config = scratch.check_config({"users": ["sgeadmin"], "path": "/scratch/"})
    assert config["path"] == "/scratch"
    assert config["fstype"] == "ext4"
    assert config["models"] == [IS]


def test_plan_action_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps({"users": ["sgeadmin"]}))
    assert scratch.main(["plan", "--config", str(conf)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "chosen" in out["selection"]
    conf.write_text(json.dumps({"fstype": "zfs"}))
    assert scratch.main(["plan", "--config", str(conf)]) == 1


class FakeSystem(scratch.System):
    """Records the commands start and stop would run, with a given mount table."""

    def __init__(self, mountinfo: str = "") -> None:
        self.commands: list[list[str]] = []
        self.table = mountinfo
        self.messages: list[str] = []

    def run(self, argv):
        self.commands.append(list(argv))
        return ""

    def mountinfo(self) -> str:
        return self.table

    def log(self, message: str) -> None:
        self.messages.append(message)


@pytest.fixture
def boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """start/stop against a fake disk tree, with the state file and scratch path in tmp."""
    monkeypatch.setattr(scratch, "STATE_FILE", str(tmp_path / "state.json"))
    me = pwd.getpwuid(os.getuid()).pw_name
    config = scratch.check_config({"path": str(tmp_path / "scratch"), "users": [me]})

    def use(disks: list[scratch.Disk], mdadm: bool = True) -> None:
        monkeypatch.setattr(scratch, "plan", lambda _config: (scratch.select(disks), disks))
        monkeypatch.setattr(
            scratch.shutil,
            "which",
            lambda name: f"/sbin/{name}" if mdadm or name != "mdadm" else None,
        )

    return config, me, use


def test_start_stripes_several_disks_then_formats_and_mounts(tmp_path: Path, boot) -> None:
    config, me, use = boot
    use(nitro(tmp_path / "tree"))
    system = FakeSystem()
    state = scratch.start(config, system)
    path = config["path"]
    assert system.commands == [
        ["wipefs", "--all", "--quiet", "/dev/nvme1n1"],
        ["wipefs", "--all", "--quiet", "/dev/nvme2n1"],
        scratch.md_create_command(["/dev/nvme1n1", "/dev/nvme2n1"]),
        ["udevadm", "settle", "--timeout=30"],
        scratch.mkfs_command("ext4", scratch.MD_DEVICE),
        ["mount", "-t", "ext4", "-o", "defaults,noatime", scratch.MD_DEVICE, path],
    ]
    assert state["source"] == scratch.MD_DEVICE
    assert json.loads(Path(scratch.STATE_FILE).read_text())["devices"] == state["devices"]
    assert oct(os.stat(f"{path}/tmp").st_mode & 0o7777) == "0o1777"
    assert oct(os.stat(f"{path}/{me}").st_mode & 0o7777) == "0o700"


def test_start_without_mdadm_uses_one_disk(tmp_path: Path, boot) -> None:
    config, _me, use = boot
    use(nitro(tmp_path / "tree"), mdadm=False)
    system = FakeSystem()
    state = scratch.start(config, system)
    assert state["devices"] == ["/dev/nvme1n1"]
    assert system.commands[-2] == scratch.mkfs_command("ext4", "/dev/nvme1n1")


def test_start_without_instance_store_makes_a_directory(tmp_path: Path, boot) -> None:
    config, me, use = boot
    use([])
    system = FakeSystem()
    state = scratch.start(config, system)
    assert system.commands == []
    assert state["source"] == "root disk"
    assert Path(config["path"], me).is_dir()


def test_start_never_formats_a_mounted_scratch(tmp_path: Path, boot) -> None:
    config, _me, use = boot
    use(nitro(tmp_path / "tree"))
    mounted = f"31 30 259:10 / {config['path']} rw - ext4 /dev/nvme1n1 rw\n"
    system = FakeSystem(mounted)
    scratch.start(config, system)
    assert system.commands == []
    scratch.stop(config, system)
    assert system.commands == [["umount", config["path"]]]
