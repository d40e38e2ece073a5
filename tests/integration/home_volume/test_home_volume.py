"""The kept home volume, end to end, in real systemd containers (root, Docker).

An EC2 master whose /home lives on a cluster-owned EBS volume, played by a systemd
container of the node image (harness/) and a loop device standing in for the volume:

1. First launch. A fresh master whose /home is on its own root filesystem (the
   container's, not a docker volume), with the login user `admin` as cloud-init leaves
   it (key K1 in ~/.ssh/authorized_keys, some files). The master plays of
   playbooks/configure.yml, cut down to roles common and ebs_mount in configure.yml's own
   order, run over SSH as admin with K1, with the home volume entry the EC2 inventory
   gives: check mode changes nothing; the run puts a copy of /home on the blank volume
   and mounts it at /home; sgeadmin's home is made on the volume; SSH as admin with K1
   works; a second run changes nothing.
2. Relaunch. That container is removed and a NEW one started (fresh root disk, admin
   with a NEW key K2) with the SAME loop device: nothing is formatted or copied over
   (same filesystem UUID, the root disk's new file not copied), every file written
   before is there, SSH as admin with K2 works. A second, blank volume with
   copy_existing, xfs and owner sgeadmin gets a copy of its mount point and its owner; a
   blank data volume naming no owner becomes the cluster user's, one that held a
   filesystem stays root's.
   (A second run after the relaunch is left out for time: it takes the same paths as
   the first launch's second run, and molecule/default converges twice with such a
   volume.)

Skipped only when not root or when no Docker engine can be started.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CONFIGURE = REPO / "playbooks" / "configure.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
IMAGE = os.environ.get("SEGWAY_NODE_IMAGE", "segway-node:bookworm")
# The roles whose order over /home this test is about; configure.yml's other roles
# (nfs, sge, segway_env) are left out of the test's copy of it.
ROLES = {"segway.cluster.common", "segway.cluster.ebs_mount"}
HOME_VOLUME_ID = "vol-0e1e2e3e4e5e6e7e8"
HOME_SERIAL = "vol0e1e2e3e4e5e6e7e8"
ADMIN_UID = 1000  # the login user's uid on Debian's EC2 images, the same on every launch
PROBE_FILES = {
    "admin/results/segway.bed": "chr1\t0\t100\t1\n",
    "admin/notes.txt": "written on the first master's root disk\n",
}


def run(*argv: str, check: bool = True, timeout: int = 120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


# --------------------------------------------------------------------------- environment


@pytest.fixture(scope="module")
def engine() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: attaches loop devices and starts containers")
    started = run(str(REPO / "harness" / "ensure_docker.sh"), check=False, timeout=300)
    if started.returncode != 0:
        pytest.skip(f"no Docker engine could be started: {started.stderr.strip()[-500:]}")
    # The node image (cached by content hash: a second call takes about a second).
    run(str(REPO / "harness" / "build_image.sh"), timeout=1800)


@dataclass
class Bed:
    """Everything the test creates, so that all of it is removed afterwards."""

    name: str
    work: Path
    network: str = ""
    containers: list[str] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)

    def key(self, name: str) -> tuple[Path, str]:
        path = self.work / name
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path))
        return path, path.with_suffix(".pub").read_text().strip()

    def volume(self, name: str, size_mib: int) -> str:
        image = self.work / f"{name}.img"
        with image.open("wb") as stream:
            stream.truncate(size_mib * 1024 * 1024)
        device = run("losetup", "--show", "-f", str(image)).stdout.strip()
        self.loops.append(device)
        return device

    def cleanup(self) -> None:
        for container in self.containers:
            run("docker", "rm", "-f", "-v", container, check=False)
        if self.network:
            run("docker", "network", "rm", self.network, check=False)
        for device in self.loops:
            run("losetup", "-d", device, check=False)


@pytest.fixture(scope="module")
def testbed(engine) -> Iterator[Bed]:
    # A short path: ssh's ControlPath socket lives in it.
    work = Path(tempfile.mkdtemp(prefix="segway-hv."))
    bed = Bed(name=f"segway-hv-{secrets.token_hex(3)}", work=work)
    try:
        bed.network = bed.name
        run("docker", "network", "create", "--label", "segway.test=home_volume", bed.network)
        yield bed
    finally:
        bed.cleanup()
        run("rm", "-rf", str(work), check=False)


@dataclass
class Master:
    container: str
    address: str

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(
            "docker", "exec", self.container, "bash", "-euo", "pipefail", "-c", script, check=check
        )

    def read(self, path: str) -> str:
        return self.sh(f"cat {path}").stdout


def start_master(bed: Bed, label: str, devices: list[str], pubkey: str) -> Master:
    """A new EC2-like master: fresh root disk, admin with this key, sudo, sshd running."""
    container = f"{bed.name}-{label}"
    argv = ["docker", "run", "-d", "--name", container, "--hostname", "master",
            "--label", "segway.test=home_volume", "--network", bed.network,
            "--cap-add", "SYS_ADMIN", "--cap-add", "DAC_READ_SEARCH",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs", "/run", "--tmpfs", "/run/lock"]  # fmt: skip
    for device in devices:
        argv += ["--device", f"{device}:{device}:rwm"]
    bed.containers.append(container)
    run(*argv, IMAGE, "/lib/systemd/systemd")
    address = run(
        "docker",
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container,
    ).stdout.strip()
    master = Master(container, address)
    # Until systemd answers on its bus, systemctl prints nothing on stdout.
    state = ""
    deadline = time.monotonic() + 120
    while not state and time.monotonic() < deadline:
        state = master.sh("systemctl is-system-running --wait || true").stdout.strip()
        time.sleep(0 if state else 0.5)
    assert state in ("running", "degraded"), f"systemd in {container}: {state!r}"
    # What cloud-init does at an EC2 instance's first boot: the login user, its key
    # pair's public key in ~/.ssh/authorized_keys on the root disk, passwordless sudo.
    master.sh(f"""
        useradd -m -u {ADMIN_UID} -U -s /bin/bash admin
        echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users
        install -d -m 0700 -o admin -g admin /home/admin/.ssh
        echo {pubkey!r} > /home/admin/.ssh/authorized_keys
        chown admin:admin /home/admin/.ssh/authorized_keys
        chmod 0600 /home/admin/.ssh/authorized_keys
        systemctl is-active ssh
    """)
    # The NVMe link udev makes on a Nitro instance, so the volume is found by its id.
    master.sh(f"""
        mkdir -p /dev/disk/by-id
        ln -sfn {devices[0]} /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{HOME_SERIAL}
    """)
    assert "/home" not in master.sh("findmnt -n -o TARGET --target /home/admin").stdout.split()
    return master


# --------------------------------------------------------------------------- the plays


def configure_plays(*, stop_before_common: bool = False) -> list[dict]:
    """configure.yml's plays with only its common and ebs_mount tasks, in its order."""
    plays = yaml.safe_load(CONFIGURE.read_text())
    kept = []
    for play in plays:
        tasks = []
        for task in play["tasks"]:
            role = task.get("ansible.builtin.import_role") or task.get(
                "ansible.builtin.include_role"
            )
            if not role or role["name"] not in ROLES:
                continue
            if (
                stop_before_common
                and role["name"] == "segway.cluster.common"
                and ("tasks_from" not in role)
            ):
                break
            tasks.append(task)
        kept.append({**play, "tasks": tasks})
    return kept


def test_configure_orders_login_keys_then_volumes_then_users() -> None:
    """The order this file tests is configure.yml's own (read from it, not restated)."""
    steps = [
        (role["name"].split(".")[-1], role.get("tasks_from", "main"))
        for task in configure_plays()[1]["tasks"]
        for role in [task.get("ansible.builtin.import_role")]
    ]
    assert steps == [
        ("common", "login_keys"),
        ("ebs_mount", "volumes"),
        ("common", "main"),
        ("ebs_mount", "owners"),
    ]


@dataclass
class Result:
    proc: subprocess.CompletedProcess
    seconds: float

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    @property
    def recap(self) -> dict[str, int]:
        match = re.search(r"^master\s*:\s*(.*)$", self.proc.stdout, re.MULTILINE)
        assert match, self.output
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def play(
    bed: Bed, master: Master, key: Path, volumes: list[dict], *,
    check: bool = False, stop_before_common: bool = False,
) -> Result:  # fmt: skip
    """The cut-down configure.yml over SSH as admin with this key, sudo to root."""
    playbook = bed.work / "configure-home.yml"
    playbook.write_text(yaml.safe_dump(configure_plays(stop_before_common=stop_before_common)))
    inventory = bed.work / "inventory.yml"
    inventory.write_text(yaml.safe_dump({
        "master": {"hosts": {"master": {
            "ansible_host": master.address,
            "ansible_user": "admin",
            "ansible_ssh_private_key_file": str(key),
            "ansible_become": True,
            "ansible_python_interpreter": "/usr/bin/python3",
            "ebs_mount_volumes": volumes,
        }}},
        "compute": {"hosts": {}},
    }))  # fmt: skip
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        # Each run its own SSH master connection: a run never reuses the last run's login.
        ANSIBLE_SSH_CONTROL_PATH_DIR=tempfile.mkdtemp(prefix="cp.", dir=bed.work),
        ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=30s "
        "-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
    )
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)]
    started = time.monotonic()
    proc = run(*argv, *(["--check"] if check else []), check=False, timeout=600, cwd=REPO,
               env=env)  # fmt: skip
    result = Result(proc, time.monotonic() - started)
    # SEGWAY_TEST_LOG_DIR=DIR keeps every run's output (with per-task times) for reading.
    if os.environ.get("SEGWAY_TEST_LOG_DIR"):
        log = Path(os.environ["SEGWAY_TEST_LOG_DIR"]) / f"{bed.name}-{time.time():.0f}.log"
        log.write_text(result.output)
    assert proc.returncode == 0, result.output[-6000:]
    return result


def ssh_works(master: Master, key: Path) -> subprocess.CompletedProcess:
    """A new SSH login as admin with this key (no shared connection), running `id -un`."""
    return run(
        "ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "ControlMaster=no", "-o", "ConnectTimeout=10",
        f"admin@{master.address}", "id -un", check=False,
    )  # fmt: skip


def volume_state(master: Master, device: str) -> dict[str, str]:
    out = master.sh(f"blkid --probe -o export {device} || true").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def source_of(master: Master, path: str) -> str:
    return master.sh(f"findmnt -n -o SOURCE --target {path}").stdout.strip()


def home_volume_entry() -> dict:
    """As inventory/ec2_segway.py gives it for the volume launch.yml keeps."""
    return {
        "name": "home",
        "volume_id": HOME_VOLUME_ID,
        "mount_point": "/home",
        "share": True,
        "format": "if_blank",
        "copy_existing": True,
    }


# --------------------------------------------------------------------------- the test


def test_home_volume_survives_a_relaunch(testbed: Bed) -> None:  # noqa: PLR0915
    bed = testbed
    k1, k1_pub = bed.key("k1")
    k2, k2_pub = bed.key("k2")
    home_dev = bed.volume("home", 256)
    timings = {}

    # ---- first launch: /home on the root disk, a blank home volume
    first = start_master(bed, "first", [home_dev], k1_pub)
    first.sh("""
        install -d -o admin -g admin /home/admin/results
        printf 'chr1\\t0\\t100\\t1\\n' > /home/admin/results/segway.bed
        ln /home/admin/results/segway.bed /home/admin/results/segway.hardlink.bed
        echo "written on the first master's root disk" > /home/admin/notes.txt
        chown -R admin:admin /home/admin
    """)
    volumes = [home_volume_entry()]

    dry = play(bed, first, k1, volumes, check=True, stop_before_common=True)
    timings["check mode"] = dry.seconds
    assert dry.recap["failed"] == 0
    assert volume_state(first, home_dev) == {}, "check mode wrote to the blank volume"
    assert "/home" not in first.read("/etc/fstab")
    assert first.sh("test -e /etc/ssh/authorized_keys", check=False).returncode != 0
    assert source_of(first, "/home/admin") != home_dev
    # What the copy must carry over (Ansible and sudo have added their files by now).
    listing = "cd /home && find . -printf '%p %U %G %m %y\\n' | sort"
    listing += " | grep -Ev '^./(lost\\+found|sgeadmin|admin/\\.ansible)( |/)'"
    root_disk_home = first.sh(listing).stdout
    assert "./admin/results/segway.bed 1000 1000 644 f" in root_disk_home

    done = play(bed, first, k1, volumes)
    timings["first launch"] = done.seconds
    assert done.recap["changed"] > 0
    fs = volume_state(first, home_dev)
    assert fs["TYPE"] == "ext4"
    assert fs["LABEL"] == "home"
    assert source_of(first, "/home") == home_dev
    assert f"UUID={fs['UUID']} /home ext4" in first.read("/etc/fstab")
    # Everything /home held on the root disk is on the volume, as it was (besides what
    # the run added: lost+found, sgeadmin's home, Ansible's own ~/.ansible).
    assert first.sh(listing).stdout == root_disk_home
    for path, text in PROBE_FILES.items():
        assert first.read(f"/home/{path}") == text
    # The cluster user's home was created on the volume, after it was mounted.
    assert source_of(first, "/home/sgeadmin") == home_dev
    assert first.sh("stat -c %U /home/sgeadmin/.ssh/id_ed25519.pub").stdout.strip() == "sgeadmin"
    sgeadmin_key = first.read("/home/sgeadmin/.ssh/id_ed25519.pub")
    # The login key is kept outside /home, and a new login with it works.
    assert first.read("/etc/ssh/authorized_keys/admin").strip() == k1_pub
    assert first.sh("stat -c '%U %a' /etc/ssh/authorized_keys/admin").stdout.split() == [
        "root",
        "644",
    ]
    login = ssh_works(first, k1)
    assert login.returncode == 0 and login.stdout.strip() == "admin", login.stderr

    again = play(bed, first, k1, volumes)
    timings["first launch, second run"] = again.seconds
    assert again.recap["changed"] == 0, again.output[-4000:]

    # A Segway run's results, written on the mounted volume.
    first.sh("echo 'results of a Segway run' > /home/admin/results/after-mount.txt")
    run("docker", "rm", "-f", "-v", first.container)
    bed.containers.remove(first.container)

    # ---- relaunch: a NEW master (fresh root disk, new key K2), the SAME home volume,
    # and a second blank volume (xfs, owned by the cluster user) whose mount point holds
    # files on the new root disk.
    scratch_dev = bed.volume("scratch", 320)
    # Two data volumes that name no owner, as launch.yml's /data does on EC2: a blank one
    # (it gets the cluster user, configure.yml's ebs_mount_new_volume_owner) and one that
    # holds a filesystem already, root's (it is left root's).
    data_dev = bed.volume("data", 64)
    kept_dev = bed.volume("kept", 64)
    second = start_master(bed, "second", [home_dev, scratch_dev, data_dev, kept_dev], k2_pub)
    second.sh(f"""
        echo 'only on the new root disk' > /home/admin/new-root-disk-file.txt
        install -d /scratch/inputs && echo 'input' > /scratch/inputs/a.txt
        mkfs.ext4 -q -L kept {kept_dev}
    """)
    assert ssh_works(second, k2).returncode == 0
    volumes = [
        home_volume_entry(),
        {
            "name": "scratch",
            "device": scratch_dev,
            "mount_point": "/scratch",
            "fstype": "xfs",
            "share": False,
            "copy_existing": True,
            "owner": "sgeadmin",
            "group": "sgeadmin",
            "mode": "0775",
        },
        {"name": "data", "device": data_dev, "mount_point": "/data", "share": True,
         "format": "if_blank"},
        {"name": "kept", "device": kept_dev, "mount_point": "/kept", "share": True,
         "format": "never"},
    ]  # fmt: skip
    relaunch = play(bed, second, k2, volumes)
    timings["relaunch"] = relaunch.seconds
    after = volume_state(second, home_dev)
    assert after["UUID"] == fs["UUID"], "the kept home volume was formatted again"
    assert after["LABEL"] == "home"
    assert source_of(second, "/home") == home_dev
    for path, text in PROBE_FILES.items():
        assert second.read(f"/home/{path}") == text
    assert second.read("/home/admin/results/after-mount.txt") == "results of a Segway run\n"
    hardlinks = second.sh("stat -c %i /home/admin/results/segway.bed "
                          "/home/admin/results/segway.hardlink.bed").stdout.split()  # fmt: skip
    assert hardlinks[0] == hardlinks[1]
    # Not copied over: the volume held a filesystem; the new root disk's file stays hidden.
    assert second.sh("test -e /home/admin/new-root-disk-file.txt", check=False).returncode == 1
    # The volume's own files are left as they were (its authorized_keys holds K1) ...
    assert second.read("/home/admin/.ssh/authorized_keys").strip() == k1_pub
    # ... and the current key, K2, was kept outside /home before the mount: login works.
    assert second.read("/etc/ssh/authorized_keys/admin").strip() == k2_pub
    login = ssh_works(second, k2)
    assert login.returncode == 0 and login.stdout.strip() == "admin", login.stderr
    # The cluster user is back, with its home and key from the volume.
    assert (
        second.sh("getent passwd sgeadmin | cut -d: -f3,6").stdout.strip() == "2000:/home/sgeadmin"
    )
    assert second.read("/home/sgeadmin/.ssh/id_ed25519.pub") == sgeadmin_key
    # The blank xfs volume got the new root disk's /scratch, then its owner and mode.
    scratch = volume_state(second, scratch_dev)
    assert (scratch["TYPE"], scratch["LABEL"]) == ("xfs", "scratch")
    assert source_of(second, "/scratch") == scratch_dev
    assert second.read("/scratch/inputs/a.txt") == "input\n"
    assert second.sh("stat -c '%U %G %a' /scratch").stdout.split() == [
        "sgeadmin",
        "sgeadmin",
        "775",
    ]
    # The new data volume is the cluster user's; the one that had a filesystem is not
    # changed.
    assert source_of(second, "/data") == data_dev
    assert second.sh("stat -c '%U %G %a' /data").stdout.split() == ["sgeadmin", "sgeadmin", "755"]
    assert source_of(second, "/kept") == kept_dev
    assert second.sh("stat -c '%U %G %a' /kept").stdout.split() == ["root", "root", "755"]

    print("timings (s):", json.dumps({k: round(v, 1) for k, v in timings.items()}))
