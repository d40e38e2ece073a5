"""The EC2 twin: moto_server's instances and volumes played by node containers.

moto answers the EC2 API but has no machines. ``Ec2Twin`` keeps one systemd container
of the node image (harness/) per instance moto holds, so launch.yml can wait for SSH,
configure.yml can run over SSH, and a kept volume can be re-attached with its files:

- **Instances.** A running instance is a running container ``<twin>-<instance id>``
  with the instance's private IP on a docker network that is the default VPC
  (172.31.0.0/16: moto hands out the subnet's addresses in order when a subnet is
  given, as launch always does), its public IP (moto's 54.214.x.y) on a second network,
  the hostname EC2 gives (``ip-172-31-0-4``) and, as cloud-init does on Debian's images,
  the login user ``admin`` (uid 1000, passwordless sudo) with the key pair's public key.
  A stopped instance is a stopped container; a terminated one is removed.
- **Volumes.** A volume is a sparse image file of its size (a volume made from a
  snapshot starts as a copy of the snapshot's image). Attached, it is put on a loop
  device and shown in the container as ``/dev/nvme<k>n1`` with the identity a Nitro
  instance gives it: the ``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…`` link
  and the serial ``vol…`` under ``/sys/block/nvme<k>n1/device`` (a tmpfs over the
  container's /sys/block, which also shows the root volume as ``nvme0n1``).
  Each container may open only its own block of loop minors (device-cgroup rules set
  when it is created). A detach is refused while the volume is mounted: EC2 leaves such
  a volume ``busy`` and never detaches it, so a caller must not see it go.
- **What the test kernels lack.** They have no NFS (docs: ../shared/TESTBED.md): a
  master serves its exports with NFS-Ganesha (``nfs_server_implementation=ganesha``), and
  the twin stands in for each compute node's NFS mount: a path the master exports to a
  node's private IP in Ganesha's export list, while Ganesha runs, and that lives on one
  of the master's volumes, is mounted in the node's container from the same loop
  device (the kernel shares one filesystem between both mounts, as an NFS client sees
  the server's). The shared build path is a volume of its own (``<cluster>-segway-build``)
  and mirrored the same way; with ``build_volume_size=0`` it is a directory on the
  master's root disk on EC2, which Ganesha cannot export from a container's overlay root:
  ``build_path_volume = True`` then makes it a docker volume of the master's lifetime
  mounted in every container of the cluster.
  Security groups are not enforced: every container can reach every other one.

The data plane follows the control plane in ``reconcile()``: after every state-changing
call the test proxy (``AwsProxy(after=twin.after)``) passes on, before the answer goes
back, and every second from a thread (a container restarted by hand gets its devices
again). Traffic goes only to the containers' addresses. Everything the twin made is
labelled ``segway.twin=<name>`` and removed by ``close()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ec2_moto import ec2_client

IMAGE = os.environ.get("SEGWAY_NODE_IMAGE", "segway-node:bookworm")
VPC_CIDR = "172.31.0.0/16"  # moto's default VPC
PUBLIC_CIDR = "54.214.0.0/16"  # moto's random_public_ip()
PUBLIC_GATEWAY = "54.214.255.254"  # outside what moto hands out (third octet < 255)
LOGIN_USER, LOGIN_UID = "admin", 1000  # Debian's EC2 images, as cloud-init makes it
LOOP_MAJOR = 7
FIRST_MINOR, MINORS_PER_INSTANCE = 512, 8
LOOP_CTL_REMOVE = 0x4C81
WATCHED = {
    "RunInstances",
    "StartInstances",
    "StopInstances",
    "TerminateInstances",
    "AttachVolume",
    "DetachVolume",
    "CreateSnapshot",
    "DeleteVolume",
    "CreateFleet",
}
EBS_LINK = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "DAC_READ_SEARCH",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
]  # fmt: skip


# Docker bind-mounts /etc/hostname and /etc/hosts into a container, where renaming over
# them fails (EBUSY: hostnamectl cannot set the name). An instance has them as plain
# files on its root disk, written by cloud-init at first boot: at each boot the twin
# takes docker's mounts away, and on the first boot writes their content to the disk.
# Later boots keep what is on the disk (the name the cluster gave, preserve_hostname).
BOOT_FILES_SCRIPT = """
for f in /etc/hostname /etc/hosts; do
    if mountpoint -q "$f"; then
        cp "$f" "/run/.twin-$(basename "$f")"
        umount "$f"
        [ -e /etc/.segway-twin-first-boot ] || cp "/run/.twin-$(basename "$f")" "$f"
    fi
done
touch /etc/.segway-twin-first-boot
hostname "$(cat /etc/hostname)"
"""


class TwinError(RuntimeError):
    pass


class LoggedList(list):
    """A list whose appends also go, time-stamped, to a log file."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__()
        self.path, self.kind = path, kind

    def append(self, item: Any) -> None:
        super().append(item)
        with self.path.open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {self.kind} {item}\n")


def sh(*argv: str, check: bool = True, timeout: float = 120, **kw: Any) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise TwinError(f"{' '.join(argv)}: rc {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return proc.stdout


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def serial_of(volume_id: str) -> str:
    return volume_id.replace("-", "")


def sysfs_script(name: str, serial: str, size_gib: int) -> str:
    """The /sys/block/<name> files a Nitro NVMe disk has and readers need: the serial
    (ebs_mount), the size in 512-byte sectors and the queue's sector size (Ansible's
    hardware facts stop at the first disk without them, losing processor_vcpus too)."""
    base = f"/sys/block/{name}"
    device = (
        f"mkdir -p {base}/device\n"
        f"echo {serial} > {base}/device/serial\n"
        f"echo 'Amazon Elastic Block Store' > {base}/device/model\n"
        if serial
        else ""
    )
    return (
        f"mkdir -p {base}/queue\n" + device + f"echo {size_gib << 21} > {base}/size\n"
        f"echo 0 > {base}/removable\n"
        f"echo 0 > {base}/queue/rotational\n"
        f"echo 512 > {base}/queue/logical_block_size"
    )


def start_time(pid: int) -> str:
    """When process `pid` started (field 22 of /proc/<pid>/stat), '' if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def filesystem_uuid(device: str) -> str:
    """The UUID blkid reports for an ext2/3/4 or XFS filesystem on `device`, else ''.

    Read from the superblock in Python: the udev thread looks ten times a second, and a
    blkid process each time cost more than the look. ebs_mount makes only these two."""
    try:
        with open(device, "rb") as stream:
            head = stream.read(2048)
    except OSError:
        return ""
    if head[:4] == b"XFSB":
        raw = head[32:48]
    elif head[1024 + 0x38 : 1024 + 0x3A] == b"\x53\xef":
        raw = head[1024 + 0x68 : 1024 + 0x78]
    else:
        return ""
    return str(uuid.UUID(bytes=raw))


@dataclass
class Attachment:
    volume_id: str
    minor: int
    name: str  # nvme<k>n1
    size_gib: int = 1


@dataclass
class Node:
    """One instance's container, as the twin knows it."""

    instance_id: str
    container: str
    first_minor: int
    cluster: str = ""
    role: str = ""
    root_volume: str = ""
    # moto gives an instance launched from a template with a root mapping two volumes:
    # its default root (/dev/sda1) and the template's. Neither is an attached data disk.
    launch_volumes: set[str] = field(default_factory=set)
    # Both are attached at the root device (moto says /dev/sda1 whatever the image's name,
    # and lists only one of them in the instance's mappings); no data disk is attached there.
    root_devices: set[str] = field(default_factory=lambda: {"/dev/sda1"})
    root_size_gib: int = 8
    attached: dict[str, Attachment] = field(default_factory=dict)
    # Mounts standing in for NFS: mount point -> (loop minor, read-only).
    mirrors: dict[str, tuple[int, bool]] = field(default_factory=dict)
    # udev's /dev/disk/by-uuid links the twin keeps: volume id -> filesystem UUID.
    uuid_links: dict[str, str] = field(default_factory=dict)
    cloud_init_done: bool = False
    # The container's init as last seen: its PID and its start time (/proc/<pid>/stat),
    # so the threads need not ask docker each time (see Ec2Twin._pid).
    pid: int = 0
    pid_started: str = ""

    def free_minor(self) -> int:
        used = {a.minor for a in self.attached.values()}
        for minor in range(self.first_minor, self.first_minor + MINORS_PER_INSTANCE):
            if minor not in used:
                return minor
        raise TwinError(f"{self.instance_id}: more than {MINORS_PER_INSTANCE} volumes attached")

    def free_name(self) -> str:
        used = {a.name for a in self.attached.values()}
        k = 1
        while f"nvme{k}n1" in used:
            k += 1
        return f"nvme{k}n1"


class Ec2Twin:
    """Containers that follow moto's instances and volumes (see the module's text)."""

    def __init__(
        self, moto_url: str, work: Path, name: str = "segway-twin", image: str = IMAGE
    ) -> None:
        self.ec2 = ec2_client(moto_url)
        self.work = work
        self.name = name
        self.image = image
        self.vpc_net = f"{name}-vpc"
        self.public_net = f"{name}-public"
        self.nodes: dict[str, Node] = {}
        # Also written, as they happen, to <work>/twin.log (read it after a failure).
        self.errors: list[str] = LoggedList(work / "twin.log", "error")
        self.events: list[str] = LoggedList(work / "twin.log", "event")
        # Instances whose containers are created but not started (a node that never
        # answers): a predicate over moto's description of the instance.
        self.hold: Callable[[Mapping[str, Any]], bool] | None = None
        self.held: set[str] = set()
        self.ignored: set[str] = set()  # instances the twin cannot play (reported once)
        # True for a cluster launched with build_volume_size=0, whose build path is a
        # directory on the master's root disk: a docker volume stands in for it. Off by
        # default: the build path is then an EBS volume, mounted over the directory, and
        # something already mounted there would keep it from being mounted.
        self.build_path_volume = False
        # Master instance -> ((init PID, export list mtime, its text), exports) last found
        # with Ganesha running (_exports).
        self._exports_seen: dict[str, tuple[tuple[int, int, str], dict]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        (work / "volumes").mkdir(parents=True, exist_ok=True)
        (work / "snapshots").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ life cycle

    def start(self, poll: float = 1.0) -> Ec2Twin:
        self._remove_leftovers()
        self._network(self.vpc_net, VPC_CIDR, "172.31.0.1")
        self._network(self.public_net, PUBLIC_CIDR, PUBLIC_GATEWAY)
        self._thread = threading.Thread(target=self._poll, args=(poll,), daemon=True)
        self._thread.start()
        self._udev_thread = threading.Thread(target=self._udev, args=(0.1,), daemon=True)
        self._udev_thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
            self._udev_thread.join(timeout=30)
        with self._lock:
            for node in list(self.nodes.values()):
                self._remove(node)
            self._remove_leftovers()
            shutil.rmtree(self.work / "volumes", ignore_errors=True)
            shutil.rmtree(self.work / "snapshots", ignore_errors=True)

    def _network(self, name: str, subnet: str, gateway: str) -> None:
        net = ipaddress.ip_network(subnet)
        for line in sh("ip", "-o", "-4", "route", "show").splitlines():
            dest = line.split()[0]
            if dest != "default" and ipaddress.ip_network(dest, strict=False).overlaps(net):
                raise TwinError(
                    f"the twin needs {subnet} for its network {name}, but this machine routes "
                    f"{dest} already ({line.strip()}); free it or run the twin elsewhere"
                )
        sh("docker", "network", "create", "--subnet", subnet, "--gateway", gateway,
           "--label", f"segway.twin={self.name}", name)  # fmt: skip

    def _remove_leftovers(self) -> None:
        """Whatever an earlier twin of this name left (a killed test run)."""
        label = f"label=segway.twin={self.name}"
        for cid in sh("docker", "ps", "-aq", "--filter", label).split():
            sh("docker", "rm", "-f", "-v", cid, check=False)
        for vol in sh("docker", "volume", "ls", "-q", "--filter", label).split():
            sh("docker", "volume", "rm", "-f", vol, check=False)
        for net in sh("docker", "network", "ls", "-q", "--filter", label).split():
            sh("docker", "network", "rm", net, check=False)
        self._free_loops(range(FIRST_MINOR, FIRST_MINOR + 64 * MINORS_PER_INSTANCE))

    def _free_loops(self, minors: range | list[int]) -> None:
        """Detach and remove twin loop devices, so that no losetup --find hands them out."""
        for minor in minors:
            dev = Path(f"/dev/loop{minor}")
            if not Path(f"/sys/block/loop{minor}").exists():
                continue
            if Path(f"/sys/block/loop{minor}/loop/backing_file").exists():
                sh("losetup", "-d", str(dev), check=False)
            try:
                fd = os.open("/dev/loop-control", os.O_RDWR)
                try:
                    fcntl.ioctl(fd, LOOP_CTL_REMOVE, minor)
                finally:
                    os.close(fd)
            except OSError:
                pass  # still busy (autoclear pending): left for the kernel
            dev.unlink(missing_ok=True)

    # ------------------------------------------------------------------ hooks

    def after(self, action: str, fields: Mapping[str, str], status: int) -> None:
        """AwsProxy's after-hook: follow a state change before its answer goes back."""
        if action in WATCHED and status < 400:
            # A failure is kept in self.errors (reconcile), which the tests assert empty.
            with contextlib.suppress(Exception):
                self.reconcile(reason=action)

    def refuse(self, fields: Mapping[str, str]) -> tuple[str, str] | None:
        """AwsProxy refusal rule: a detach of a mounted volume does not happen on EC2 (the
        volume stays busy), so the twin refuses it rather than pull a mounted device."""
        if fields.get("Action") != "DetachVolume" or fields.get("Force", "").lower() == "true":
            return None
        volume_id = fields.get("VolumeId", "")
        with self._lock:
            for node in self.nodes.values():
                att = node.attached.get(volume_id)
                if att:
                    where = self.mounted_anywhere(att.minor)
                    if where:
                        return (
                            "IncorrectState",
                            f"Volume {volume_id} is busy: mounted at {', '.join(where)}. "
                            "Unmount it first (EC2 leaves a mounted volume detaching).",
                        )
        return None

    def _udev(self, every: float) -> None:
        """What udev does on an instance when a filesystem is made on a disk (the close
        of mkfs's write): the /dev/disk/by-uuid/<UUID> link. mount UUID=... needs it
        here: blkid cannot find the filesystem by scanning, as /proc/partitions names the
        host's loop devices, whose sysfs the container does not see."""
        # Not under the reconcile lock, which a pass holds for a second or more: udev
        # is quick on an instance, and mount follows mkfs closely.
        while not self._stop.wait(every):
            for node in list(self.nodes.values()):
                try:
                    self._uuid_links(node)
                except Exception as err:  # kept and reported by the test
                    if node.instance_id in self.nodes and self._pid(node):
                        self.errors.append(f"udev: {err}")

    def _uuid_links(self, node: Node) -> None:
        pid = self._pid(node) if node.attached else 0
        if not pid:
            return
        for vid, att in list(node.attached.items()):
            found = filesystem_uuid(f"/dev/loop{att.minor}")
            if found == node.uuid_links.get(vid, ""):
                continue
            old = node.uuid_links.get(vid, "")
            script = "mkdir -p /dev/disk/by-uuid"
            if old:
                script += f"; rm -f /dev/disk/by-uuid/{old}"
            if found:
                script += f"; ln -sfn ../../{att.name} /dev/disk/by-uuid/{found}"
            self._nsenter(pid, script)
            node.uuid_links[vid] = found
            self.events.append(f"udev {vid} {node.instance_id} uuid={found or '-'}")

    def _poll(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.reconcile(reason="poll")
            except Exception as err:  # kept and reported by the test
                self.errors.append(f"poll: {err}")

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, reason: str = "") -> None:
        with self._lock:
            try:
                self._reconcile()
            except Exception as err:
                self.errors.append(f"{reason}: {err}")
                raise

    def _reconcile(self) -> None:
        instances = {
            i["InstanceId"]: i
            for r in self.ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
        }
        volumes = {v["VolumeId"]: v for v in self.ec2.describe_volumes()["Volumes"]}
        self._snapshots(volumes)
        for iid in list(self.nodes):
            state = instances.get(iid, {}).get("State", {}).get("Name", "terminated")
            if state in ("terminated", "shutting-down"):
                self._remove(self.nodes.pop(iid))
        for iid, inst in instances.items():
            state = inst["State"]["Name"]
            if state in ("running", "pending"):
                node = self.nodes.get(iid) or self._create(inst)
                if node and iid not in self.held:
                    self._ensure_running(node, inst)
            elif state in ("stopped", "stopping") and iid in self.nodes:
                self._stop_container(self.nodes[iid])
        for node in self.nodes.values():
            if self._pid(node):
                self._follow_volumes(node, volumes)
        self._follow_exports()
        self._drop_deleted_images(volumes)

    # ------------------------------------------------------------------ instances

    def _create(self, inst: Mapping[str, Any]) -> Node | None:
        iid = inst["InstanceId"]
        private = inst.get("PrivateIpAddress", "")
        if not private or ipaddress.ip_address(private) not in ipaddress.ip_network(VPC_CIDR):
            if iid in self.ignored:
                return None
            self.ignored.add(iid)
            self.errors.append(
                f"{iid}: private address {private!r} is outside the twin's VPC {VPC_CIDR} "
                "(launch it into a subnet of the default VPC)"
            )
            return None
        tags = tags_of(inst)
        used = {n.first_minor for n in self.nodes.values()}
        first = next(
            m for m in range(FIRST_MINOR, FIRST_MINOR + 64 * MINORS_PER_INSTANCE,
                             MINORS_PER_INSTANCE) if m not in used
        )  # fmt: skip
        node = Node(
            instance_id=iid,
            container=f"{self.name}-{iid}",
            first_minor=first,
            cluster=tags.get("segway:cluster", ""),
            role=tags.get("segway:role", ""),
            root_volume=self._root_volume(inst),
            launch_volumes={
                m.get("Ebs", {}).get("VolumeId", "") for m in inst.get("BlockDeviceMappings", [])
            },
            root_devices={"/dev/sda1", inst.get("RootDeviceName") or "/dev/sda1"},
        )
        if node.root_volume:
            root = self.ec2.describe_volumes(VolumeIds=[node.root_volume])["Volumes"]
            node.root_size_gib = int(root[0]["Size"]) if root else node.root_size_gib
        argv = ["docker", "create", "--name", node.container,
                "--hostname", "ip-" + private.replace(".", "-"),
                "--network", self.vpc_net, "--ip", private,
                "--label", f"segway.twin={self.name}", "--label", f"segway.twin.instance={iid}",
                *SYSTEMD_FLAGS]  # fmt: skip
        for minor in range(first, first + MINORS_PER_INSTANCE):
            argv += ["--device-cgroup-rule", f"b {LOOP_MAJOR}:{minor} rwm"]
        build = self._build_volume(node, inst)
        if build:
            argv += ["-v", f"{build}:/segway-build"]
        sh(*argv, self.image, "/lib/systemd/systemd")
        public = inst.get("PublicIpAddress")
        if public:
            sh("docker", "network", "connect", "--ip", public, self.public_net, node.container)
        self.nodes[iid] = node
        self.events.append(f"create {iid} {private} {public or '-'}")
        if self.hold and self.hold(inst):
            self.held.add(iid)
            self.events.append(f"hold {iid}")
        return node

    def _root_volume(self, inst: Mapping[str, Any]) -> str:
        root = inst.get("RootDeviceName")
        mappings = inst.get("BlockDeviceMappings", [])
        for mapping in mappings:
            if mapping.get("DeviceName") == root:
                return mapping.get("Ebs", {}).get("VolumeId", "")
        # moto attaches the root volume as /dev/sda1 whatever the image's root device
        # name: the first mapping, made with the instance, is the root volume.
        return mappings[0].get("Ebs", {}).get("VolumeId", "") if mappings else ""

    def _build_volume(self, node: Node, inst: Mapping[str, Any]) -> str:
        """The docker volume standing in for the master's exported build path: named after
        the cluster's master instance, whose root disk holds it on EC2."""
        if not node.cluster or not self.build_path_volume:
            return ""
        master = inst["InstanceId"] if node.role == "master" else ""
        if not master:
            for other in self.nodes.values():
                if other.cluster == node.cluster and other.role == "master":
                    master = other.instance_id
        if not master:
            return ""
        vol = f"{self.name}-{master}-segway-build"
        sh("docker", "volume", "create", "--label", f"segway.twin={self.name}", vol)
        return vol

    def release(self, instance_id: str) -> None:
        """Start a held instance's container (the node comes up late)."""
        with self._lock:
            self.held.discard(instance_id)
            self.events.append(f"release {instance_id}")
        self.reconcile(reason="release")

    def _pid(self, node: Node) -> int:
        """The PID of the container's init, 0 when it is not running.

        Asked of docker only when the one seen last has gone (same PID, same start time:
        not reused): the poll and udev threads look many times a second, and a
        `docker inspect` each time kept a good part of this 2-core machine busy."""
        if node.pid and start_time(node.pid) == node.pid_started:
            return node.pid
        out = sh("docker", "inspect", "-f", "{{.State.Pid}}", node.container, check=False)
        pid = int(out.strip() or 0)
        node.pid, node.pid_started = pid, start_time(pid) if pid else ""
        return pid

    def _ensure_running(self, node: Node, inst: Mapping[str, Any]) -> None:
        pid = self._pid(node)
        if not pid:
            sh("docker", "start", node.container)
            self.events.append(f"start {node.instance_id}")
            pid = self._pid(node)
        if not node.cloud_init_done:
            self._cloud_init(node, inst)
        if not Path(f"/proc/{pid}/root/run/segway-twin").exists():
            # A fresh /dev and /sys/block (first boot or a restart): show every device.
            node.uuid_links.clear()  # a fresh /dev: the links are made again
            self._nsenter(pid, self._devices_script(node))
            self.events.append(f"devices {node.instance_id}")

    def _cloud_init(self, node: Node, inst: Mapping[str, Any]) -> None:
        key = ""
        if inst.get("KeyName"):
            pairs = self.ec2.describe_key_pairs(KeyNames=[inst["KeyName"]], IncludePublicKey=True)[
                "KeyPairs"
            ]
            key = pairs[0].get("PublicKey", "").strip() if pairs else ""
        # cloud-init makes the user late in the boot: here too, once systemd is up (at
        # boot systemd-sysusers holds the lock on /etc/passwd that useradd needs).
        script = f"""
            timeout 120 systemctl is-system-running --wait >/dev/null 2>&1 || true
            id -u {LOGIN_USER} >/dev/null 2>&1 ||
                useradd -m -u {LOGIN_UID} -U -s /bin/bash {LOGIN_USER}
            echo '{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users
            install -d -m 0700 -o {LOGIN_USER} -g {LOGIN_USER} /home/{LOGIN_USER}/.ssh
            printf '%s\\n' '{key}' > /home/{LOGIN_USER}/.ssh/authorized_keys
            chown {LOGIN_USER}:{LOGIN_USER} /home/{LOGIN_USER}/.ssh/authorized_keys
            chmod 0600 /home/{LOGIN_USER}/.ssh/authorized_keys
        """
        sh("docker", "exec", node.container, "sh", "-euc", script)
        node.cloud_init_done = True

    def _stop_container(self, node: Node) -> None:
        if self._pid(node):
            sh("docker", "stop", "-t", "20", node.container)
            self.events.append(f"stop {node.instance_id}")

    def _remove(self, node: Node) -> None:
        for other in self.nodes.values():
            if other is not node:
                self._unmirror(other, {a.minor for a in node.attached.values()})
        sh("docker", "rm", "-f", "-v", node.container, check=False)
        self._free_loops([a.minor for a in node.attached.values()])
        node.attached.clear()
        if node.role == "master":
            sh("docker", "volume", "rm", "-f",
               f"{self.name}-{node.instance_id}-segway-build", check=False)  # fmt: skip
        self.held.discard(node.instance_id)
        self.events.append(f"remove {node.instance_id}")

    @staticmethod
    def _nsenter(pid: int, script: str) -> str:
        # The container's mount, PID and UTS namespaces: without -u, `hostname` in a
        # script would rename this machine (it did, once).
        return sh("nsenter", "-t", str(pid), "-m", "-p", "-u", "--", "sh", "-euc", script)

    # ------------------------------------------------------------------ volumes

    def _devices_script(self, node: Node) -> str:
        lines = [
            BOOT_FILES_SCRIPT,
            "grep -q ' /sys/block ' /proc/self/mountinfo || "
            "mount -t tmpfs -o size=1m,mode=755 segway-twin-sysblock /sys/block",
            "mkdir -p /dev/disk/by-id",
            sysfs_script("nvme0n1", serial_of(node.root_volume) or "vol0", node.root_size_gib),
        ]
        for att in node.attached.values():
            lines.append(self._attach_script(att))
        lines.append("touch /run/segway-twin")
        return "\n".join(lines)

    @staticmethod
    def _attach_script(att: Attachment) -> str:
        serial = serial_of(att.volume_id)
        return (
            f"rm -f /dev/{att.name} && mknod -m 660 /dev/{att.name} b {LOOP_MAJOR} {att.minor}\n"
            f"ln -sfn ../../{att.name} {EBS_LINK}{serial}\n"
            + sysfs_script(att.name, serial, att.size_gib)
        )

    def _image(self, vol: Mapping[str, Any]) -> Path:
        path = self.work / "volumes" / f"{vol['VolumeId']}.img"
        if not path.exists():
            snap = self.work / "snapshots" / f"{vol.get('SnapshotId') or 'none'}.img"
            if vol.get("SnapshotId") and snap.exists():
                sh("cp", "--sparse=always", str(snap), str(path))
            with path.open("ab") as stream:
                stream.truncate(max(int(vol["Size"]) << 30, stream.tell()))
        return path

    def _follow_volumes(self, node: Node, volumes: Mapping[str, Mapping[str, Any]]) -> None:
        wanted = {
            vid
            for vid, vol in volumes.items()
            for a in vol.get("Attachments", [])
            if a.get("InstanceId") == node.instance_id
            and a.get("State") in ("attaching", "attached")
            and vid != node.root_volume
            and vid not in node.launch_volumes
            and a.get("Device") not in node.root_devices
        }
        pid = self._pid(node)
        for vid in sorted(wanted - set(node.attached)):
            att = Attachment(
                vid, node.free_minor(), node.free_name(), int(volumes[vid].get("Size", 1))
            )
            sh("losetup", f"/dev/loop{att.minor}", str(self._image(volumes[vid])))
            node.attached[vid] = att
            self._nsenter(pid, self._attach_script(att))
            self.events.append(f"attach {vid} {node.instance_id} /dev/{att.name} loop{att.minor}")
        for vid in sorted(set(node.attached) - wanted):
            att = node.attached[vid]
            where = self.mounted_anywhere(att.minor)
            if where:  # only a forced detach gets here (refuse() stops the others)
                self.errors.append(f"{vid} detached while mounted at {', '.join(where)}")
            for other in self.nodes.values():
                self._unmirror(other, {att.minor})
            self._nsenter(
                pid,
                f"rm -f /dev/{att.name} {EBS_LINK}{serial_of(vid)}; rm -rf /sys/block/{att.name}",
            )
            self._free_loops([att.minor])
            del node.attached[vid]
            link = node.uuid_links.pop(vid, "")
            if link:
                self._nsenter(pid, f"rm -f /dev/disk/by-uuid/{link}")
            self.events.append(f"detach {vid} {node.instance_id}")

    def _snapshots(self, volumes: Mapping[str, Mapping[str, Any]]) -> None:
        for snap in self.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
            target = self.work / "snapshots" / f"{snap['SnapshotId']}.img"
            source = self.work / "volumes" / f"{snap.get('VolumeId')}.img"
            if not target.exists() and source.exists():
                sh("cp", "--sparse=always", str(source), str(target))

    def _drop_deleted_images(self, volumes: Mapping[str, Mapping[str, Any]]) -> None:
        for image in (self.work / "volumes").glob("vol-*.img"):
            if image.stem not in volumes:
                image.unlink()
                self.events.append(f"delete {image.stem}")

    def mounted_anywhere(self, minor: int) -> list[str]:
        """Where loop<minor> is mounted, in any twin container: 'i-…:/data'."""
        found = []
        for node in self.nodes.values():
            pid = self._pid(node)
            for point in self._mounts_of(pid, minor):
                found.append(f"{node.instance_id}:{point}")
        return found

    @staticmethod
    def _mounts_of(pid: int, minor: int) -> list[str]:
        if not pid:
            return []
        try:
            lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        except OSError:
            return []
        return [ln.split()[4] for ln in lines if ln.split()[2] == f"{LOOP_MAJOR}:{minor}"]

    # ------------------------------------------------------------------ NFS stand-in

    def _follow_exports(self) -> None:
        for master in [n for n in self.nodes.values() if n.role == "master"]:
            pid = self._pid(master)
            exports = self._exports(master, pid) if pid else {}
            minor_at = {}
            if exports:
                for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
                    parts = line.split()
                    major, minor = parts[2].split(":", 1)
                    owned = {a.minor for a in master.attached.values()}
                    if major == str(LOOP_MAJOR) and int(minor) in owned:
                        minor_at[parts[4]] = int(minor)
            for node in self.nodes.values():
                if node.role != "compute" or node.cluster != master.cluster:
                    continue
                npid = self._pid(node)
                if not npid:
                    continue
                ip = self._private_ip(node)
                want = {
                    path: (minor_at[path], ro)
                    for path, (clients, ro) in exports.items()
                    if path in minor_at and ip in clients
                }
                for path in sorted(set(node.mirrors) - set(want)):
                    self._unmount(node, npid, path)
                for path, (minor, ro) in sorted(want.items()):
                    if node.mirrors.get(path) != (minor, ro):
                        if path in node.mirrors:
                            self._unmount(node, npid, path)
                        # The master has the filesystem mounted read-write: a second
                        # mount of it must be too (the kernel refuses one superblock
                        # both ways, EBUSY). A read-only export is made read-only on
                        # this mount only, as an NFS client sees it.
                        readonly = f"mount -o remount,bind,ro {path}" if ro else "true"
                        self._nsenter(
                            npid,
                            f"mkdir -p {path}; rm -f /dev/.twin{minor}; "
                            f"mknod /dev/.twin{minor} b {LOOP_MAJOR} {minor}; "
                            f"rc=0; mount -o rw /dev/.twin{minor} {path} && {readonly} "
                            "|| rc=$?; "
                            f"rm -f /dev/.twin{minor}; exit $rc",
                        )
                        node.mirrors[path] = (minor, ro)
                        self.events.append(f"nfs {node.instance_id} {path} loop{minor}")

    def _exports(self, master: Node, pid: int) -> dict[str, tuple[set[str], bool]]:
        """What a running Ganesha on the master exports: path -> (client IPs, read-only)."""
        conf = Path(f"/proc/{pid}/root/etc/ganesha/segway-exports.conf")
        try:
            text = conf.read_text()
            seen = (pid, conf.stat().st_mtime_ns, text)
        except OSError:
            return {}
        # Once Ganesha was found running with this export list, the answer stands until
        # the list changes (configure restarts Ganesha when it does) or the master
        # restarts: a `docker exec` every second cost more than the rest of a poll.
        cached = self._exports_seen.get(master.instance_id)
        if cached and cached[0] == seen:
            return cached[1]
        probe = ["docker", "exec", master.container, "systemctl", "is-active", "--quiet"]
        running = subprocess.run([*probe, "nfs-ganesha"], check=False, capture_output=True)
        if running.returncode != 0:
            return {}
        exports = {}
        for block in re.split(r"^EXPORT\s*\{", text, flags=re.M)[1:]:
            path = re.search(r'Path\s*=\s*"([^"]+)"', block)
            clients = re.search(r"Clients\s*=\s*([^;]+);", block)
            access = re.search(r"CLIENT\s*\{[^}]*Access_Type\s*=\s*(\w+)", block)
            if path and clients:
                exports[path.group(1)] = (
                    {c.strip() for c in clients.group(1).split(",")},
                    bool(access and access.group(1) == "RO"),
                )
        self._exports_seen[master.instance_id] = (seen, exports)
        return exports

    def _unmirror(self, node: Node, minors: set[int]) -> None:
        pid = self._pid(node)
        for path, (minor, _read_only) in list(node.mirrors.items()):
            if minor in minors:
                self._unmount(node, pid, path)

    def _unmount(self, node: Node, pid: int, path: str) -> None:
        if pid:
            self._nsenter(pid, f"umount -l {path} || true")
        node.mirrors.pop(path, None)
        self.events.append(f"nfs-gone {node.instance_id} {path}")

    def _private_ip(self, node: Node) -> str:
        out = sh("docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", node.container)
        return json.loads(out).get(self.vpc_net, {}).get("IPAddress", "")

    # ------------------------------------------------------------------ for the tests

    def containers(self) -> list[str]:
        label = f"label=segway.twin={self.name}"
        return sh("docker", "ps", "-a", "--filter", label, "--format", "{{.Names}}").split()

    def container_of(self, instance_id: str) -> str:
        return self.nodes[instance_id].container

    def exec(self, instance_id: str, script: str, user: str = "root", check: bool = True) -> str:
        return sh("docker", "exec", "-u", user, self.container_of(instance_id),
                  "bash", "-lc", script, check=check)  # fmt: skip

    def loops(self) -> list[str]:
        """Twin loop devices still bound to an image."""
        return sorted(
            p.parent.parent.name
            for p in Path("/sys/block").glob("loop*/loop/backing_file")
            if int(p.parent.parent.name[4:]) >= FIRST_MINOR
        )

    def wait_quiet(self, timeout: float = 10) -> None:
        """Until a reconcile pass finds nothing to do (the poll thread caught up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = len(self.events)
            self.reconcile(reason="wait")
            if len(self.events) == before:
                return
        raise TwinError(f"the twin kept changing for {timeout} s: {self.events[-10:]}")
