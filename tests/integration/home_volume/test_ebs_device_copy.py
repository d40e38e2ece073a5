"""segway.cluster.ebs_device's copy_from on real loop devices on this machine (root).

The module runs through `ansible -c local`, on image files attached to loop devices,
and every result is checked with util-linux and e2fsprogs (blkid, mount) and by reading
the files back, never with the module's own code:

- a blank disk gets ext4 and a copy of the directory (owners, modes, ACLs, extended
  attributes, hard links, symlinks), then its own label; check mode writes nothing;
  a second run changes nothing;
- a disk that holds a filesystem is never copied onto;
- a copy cut short (filesystem still labelled SEGWAY-COPY) is finished, keeping hard
  links; without copy_from, or with format=never, it is refused, never mounted half done;
- a filesystem mounted anywhere else is never copied onto.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ANSIBLE = Path(sys.executable).parent / "ansible"
PENDING = "SEGWAY-COPY"  # the label of an unfinished copy (the module's documented contract)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: attaches loop devices and mounts filesystems"
)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def loopdev(tmp_path: Path) -> Iterator[str]:
    """A 64 MiB all-zero image file on a loop device of its own; detached afterwards."""
    image = tmp_path / "volume.img"
    with image.open("wb") as stream:
        stream.truncate(64 * 1024 * 1024)
    device = sh("losetup", "--show", "-f", str(image)).stdout.strip()
    try:
        yield device
    finally:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            if line.split()[0] == device:
                sh("umount", line.split()[1], check=False)
        sh("losetup", "-d", device, check=False)
        image.unlink()


def module(args: dict, *, check: bool = False) -> dict:
    """Run segway.cluster.ebs_device on this machine; the task result."""
    env = dict(
        os.environ,
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    argv = [str(ANSIBLE), "localhost", "-c", "local", "-m", "segway.cluster.ebs_device"]
    argv += ["-a", json.dumps(args), "--diff", *(["--check"] if check else [])]
    proc = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON from ansible: {proc.stdout}\n{proc.stderr}") from None
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]


def probe(device: str) -> dict[str, str]:
    proc = sh("blkid", "--probe", "-o", "export", device, check=False)
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def first_mib(device: str) -> bytes:
    with open(device, "rb") as stream:
        return stream.read(1024 * 1024)


class Mounted:
    """The filesystem on a device, mounted read-only at a directory of the test's own."""

    def __init__(self, device: str, where: Path, *, writable: bool = False) -> None:
        self.device, self.where, self.writable = device, where, writable

    def __enter__(self) -> Path:
        self.where.mkdir(exist_ok=True)
        sh("mount", "-o", "rw" if self.writable else "ro", self.device, str(self.where))
        return self.where

    def __exit__(self, *exc) -> None:
        sh("umount", str(self.where))


ACL_USER_4321_RX = struct.pack("<I", 2) + b"".join(
    struct.pack("<HHI", tag, perm, ident)
    for tag, perm, ident in [
        (0x01, 7, 0xFFFFFFFF),  # user::rwx
        (0x02, 5, 4321),  # user:4321:r-x
        (0x04, 4, 0xFFFFFFFF),  # group::r--
        (0x10, 5, 0xFFFFFFFF),  # mask::r-x
        (0x20, 0, 0xFFFFFFFF),  # other::---
    ]
)


def make_home(root: Path) -> None:
    """A /home-like tree with everything a copy can get wrong."""
    admin = root / "admin"
    (admin / ".ssh").mkdir(parents=True)
    (admin / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAAtest k1\n")
    (admin / ".ssh").chmod(0o700)
    (admin / ".ssh" / "authorized_keys").chmod(0o600)
    results = admin / "results"
    results.mkdir()
    (results / "segway.bed").write_text("chr1\t0\t100\t1\n")
    os.link(results / "segway.bed", results / "segway.hardlink.bed")
    (results / "shared.txt").write_text("acl\n")
    os.setxattr(results / "shared.txt", "system.posix_acl_access", ACL_USER_4321_RX)
    os.setxattr(results / "segway.bed", "user.segway", b"train")
    (results / "latest").symlink_to("segway.bed")
    (admin / "setgid").mkdir(mode=0o2775)
    (admin / "setgid").chmod(0o2775)
    for path in [admin, *admin.rglob("*")]:
        os.lchown(path, 1000, 1000)
    other = root / "other"
    other.mkdir(mode=0o750)
    (other / "data").write_text("someone else's\n")
    for path in (other, other / "data"):
        os.chown(path, 1234, 1234)
    root.chmod(0o751)


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under root: type, mode, owner, content or target, xattrs, link group."""
    entries: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    for path in sorted([root, *root.rglob("*")]):
        rel = str(path.relative_to(root))
        if rel == "lost+found":
            continue
        st = path.lstat()
        if path.is_symlink():
            body = "-> " + os.readlink(path)
        elif path.is_file():
            body = path.read_text()
        else:
            body = "dir"
        xattrs = (
            {}
            if path.is_symlink()
            else {name: os.getxattr(path, name) for name in sorted(os.listxattr(path))}
        )
        link_group = inodes.setdefault(st.st_ino, rel) if path.is_file() else ""
        entries[rel] = (oct(st.st_mode), st.st_uid, st.st_gid, body, xattrs, link_group)
    return entries


def no_copy_mounts_left() -> None:
    assert not [p for p in os.listdir("/run") if p.startswith("segway-ebs-copy.")]
    assert "segway-ebs-copy." not in Path("/proc/self/mounts").read_text()


def test_blank_disk_gets_a_copy_then_its_label(loopdev: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_home(home)
    args = {"name": "home", "device": loopdev, "label": "home", "copy_from": str(home)}

    dry = module(args, check=True)
    assert dry["changed"] is True, dry
    assert dry["formatted"] is True
    assert dry["copied"] is True
    assert dry["copied_entries"] == ["admin", "other"]
    assert "holding a copy of" in dry["diff"]["after"]
    assert first_mib(loopdev) == bytes(1024 * 1024), "check mode wrote to the disk"
    assert probe(loopdev) == {}

    result = module(args)
    assert result["changed"] is True, result
    assert result["formatted"] is True
    assert result["copied"] is True
    found = probe(loopdev)
    assert found["TYPE"] == "ext4"
    assert found["LABEL"] == "home", "the label must replace SEGWAY-COPY once copied"
    assert result["uuid"] == found["UUID"]
    no_copy_mounts_left()
    with Mounted(loopdev, tmp_path / "mnt") as mnt:
        copied = tree(mnt)
        assert copied == tree(home)
        # The tree comparison covers these; spelled out for what matters most.
        bed = mnt / "admin" / "results" / "segway.bed"
        assert (
            bed.stat().st_ino == (mnt / "admin" / "results" / "segway.hardlink.bed").stat().st_ino
        )
        shared = mnt / "admin" / "results" / "shared.txt"
        assert os.getxattr(shared, "system.posix_acl_access") == ACL_USER_4321_RX
        assert (mnt / "other" / "data").stat().st_uid == 1234
        assert oct(mnt.stat().st_mode & 0o7777) == oct(0o751)

    # Once it holds a filesystem, it is never copied onto again.
    (home / "admin" / "later.txt").write_text("written on the root disk later\n")
    again = module(args)
    assert again["changed"] is False, again
    assert again["formatted"] is False
    assert again["copied"] is False
    assert again["uuid"] == found["UUID"]
    with Mounted(loopdev, tmp_path / "mnt") as mnt:
        assert tree(mnt) == copied
        assert not (mnt / "admin" / "later.txt").exists()


def test_a_volume_with_a_filesystem_is_never_copied_onto(loopdev: str, tmp_path: Path) -> None:
    sh("mkfs.ext4", "-q", "-L", "results", loopdev)
    with Mounted(loopdev, tmp_path / "mnt", writable=True) as mnt:
        (mnt / "precious.txt").write_text("the volume's own data\n")
    before = probe(loopdev)
    home = tmp_path / "home"
    make_home(home)

    result = module({"name": "home", "device": loopdev, "label": "home", "copy_from": str(home)})
    assert result["changed"] is False, result
    assert result["copied"] is False
    assert probe(loopdev) == before
    with Mounted(loopdev, tmp_path / "mnt") as mnt:
        assert sorted(os.listdir(mnt)) == ["lost+found", "precious.txt"]


def test_blank_disk_with_nothing_to_copy_is_labelled_at_once(loopdev: str, tmp_path: Path) -> None:
    result = module(
        {"name": "home", "device": loopdev, "label": "home", "copy_from": str(tmp_path / "none")}
    )
    assert result["formatted"] is True
    assert result["copied"] is False
    assert probe(loopdev)["LABEL"] == "home"


def test_a_copy_cut_short_is_finished(loopdev: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_home(home)
    # What a run that lost its connection mid-copy leaves: the new filesystem, still
    # labelled SEGWAY-COPY, with part of the tree (one of two hard links, a stale file).
    sh("mkfs.ext4", "-q", "-L", PENDING, loopdev)
    with Mounted(loopdev, tmp_path / "mnt", writable=True) as mnt:
        shutil.copytree(home / "admin" / ".ssh", mnt / "admin" / ".ssh")
        (mnt / "admin" / "results").mkdir()
        (mnt / "admin" / "results" / "segway.bed").write_text("chr1\t0")
    uuid = probe(loopdev)["UUID"]

    refused = module({"name": "home", "device": loopdev, "label": "home"})
    assert refused.get("failed") is True
    assert "has not finished copying" in refused["msg"]
    assert "copy_existing: true" in refused["msg"]
    never = module({"name": "home", "device": loopdev, "format": "never", "copy_from": str(home)})
    assert never.get("failed") is True
    assert PENDING in never["msg"]
    assert probe(loopdev)["LABEL"] == PENDING

    args = {"name": "home", "device": loopdev, "label": "home", "copy_from": str(home)}
    dry = module(args, check=True)
    assert dry["changed"] is True
    assert dry["copied"] is True
    assert dry["formatted"] is False
    assert probe(loopdev)["LABEL"] == PENDING

    result = module(args)
    assert result["changed"] is True, result
    assert result["formatted"] is False
    assert result["copied"] is True
    found = probe(loopdev)
    assert found["UUID"] == uuid, "finishing a copy must not reformat"
    assert found["LABEL"] == "home"
    no_copy_mounts_left()
    with Mounted(loopdev, tmp_path / "mnt") as mnt:
        assert tree(mnt) == tree(home)

    assert module(args)["changed"] is False


def test_a_copy_is_never_made_onto_a_mounted_filesystem(loopdev: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_home(home)
    sh("mkfs.ext4", "-q", "-L", PENDING, loopdev)
    with Mounted(loopdev, tmp_path / "in-use"):
        result = module(
            {"name": "home", "device": loopdev, "label": "home", "copy_from": str(home)}
        )
        assert result.get("failed") is True
        assert f"is mounted at {tmp_path / 'in-use'}" in result["msg"]
    assert probe(loopdev)["LABEL"] == PENDING
