"""The README's EC2 commands end to end on the EC2 twin (root and Docker).

moto_server plays EC2's API behind the strict proxy, and tests/ec2/ec2_twin.py plays its
machines: one systemd container of the node image per instance, at the instance's
private and public addresses, with the key pair's key for `admin`, and each attached
volume as a loop device with its NVMe identity. So the EC2 path runs as a user runs it:
launch.yml waits for SSH and runs configure.yml over SSH, ebs_mount finds the volumes by
their serial, the master exports /home and /data, and Grid Engine runs the jobs.

One cluster, in order (each step needs the one before):

1. launch size=small with a data volume -> SSH, configure; example_job.yml (provider ec2)
   runs the DRMAA job on a compute node; status.yml shows the nodes, qhost's
   mem_requested, the jobs and the cost; files are written to /home and /data. GMTK (a
   stand-in archive from the controller, gmtk_standin.py) is built onto the build volume
   and runs on a compute node.
2. put.yml and fetch.yml over SSH to the master (rsync there as the cluster user, through
   sudo): --check on a master without rsync says a real run would install it and moves
   nothing; a tree (files, a subdirectory, 1 MiB of random bytes) goes up to /data/... and
   to the cluster user's home, identical (sha256) and the cluster user's; fetch.yml
   brings it back, identical; re-runs of both change nothing.
3. launch again: nothing changes.
4. size=medium while node004's instance never answers (its container is not started):
   launch stops naming node004; once the container runs, the same command completes;
   node003 and node004 run jobs.
5. remove_nodes.yml (inventory/ec2_segway.py) takes node003/node004 out of Grid Engine
   and terminates their instances.
6. teardown keeps /home and /data; launch again re-attaches them and the files are there.
7. teardown with delete_volumes=true: nothing of the cluster in moto or docker.

The twin's limits (its kernel has no NFS; docs in ec2_twin.py) ask for two inputs
beyond the README's: nfs_server_implementation=ganesha (Ganesha serves the exports, for
real, checked from a compute node with libnfs) and nfs_client_mount=false (the twin
mounts the exported filesystem in the compute containers instead of a kernel NFS mount).
Every launch's EC2 API calls are counted at the proxy and printed with its duration.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ec2_fleet import FleetProxy
from ec2_moto import any_refusal, ec2_strict
from ec2_testlib import (
    REPO,
    Run,
    account_state,
    debian_image,
    instances_of,
    node_name_map,
    nodes_of,
    run_inventory,
    run_playbook,
    tags,
)
from ec2_twin import PUBLIC_GATEWAY, Ec2Twin
from gmtk_standin import VERSION_LINE, make_archive

CLUSTER = "twin"
# What the twin's kernel lacks (module text), given as users type them: -e name=false is
# the string 'false'. Every playbook that configures nodes takes them.
# No kernel NFS here (Ganesha serves, the twin mounts each export's filesystem in the
# compute containers). GMTK's release URL (the EC2 default) is out of reach: the fixture
# gives a stand-in archive instead (gmtk_standin.py), built in seconds, in world["gmtk"].
TWIN_INPUTS = {
    "nfs_server_implementation": "ganesha",
    "nfs_client_mount": "false",
}
MARK = "written before the teardown"


def sh(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def twin(moto, home: Path, ssh_key: Path) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("needs root: starts containers and attaches loop devices")
    started = sh(str(REPO / "harness" / "ensure_docker.sh"), timeout=300)
    if started.returncode != 0:
        pytest.skip(f"no Docker engine could be started: {started.stderr.strip()[-500:]}")
    built = sh(str(REPO / "harness" / "build_image.sh"), timeout=1800)
    assert built.returncode == 0, built.stderr[-2000:]
    moto.reset()
    # The twin runs scripts in the containers' namespaces: a `hostname` that reached this
    # machine's own UTS namespace once renamed it, and its Grid Engine cell with it.
    hostname = socket.gethostname()
    # A short path: ssh's ControlPath sockets and the volume images live under it.
    work = Path(tempfile.mkdtemp(prefix="segway-twin."))
    twin = Ec2Twin(moto.url, work).start()
    standin, digest = make_archive(work)
    strict = any_refusal(ec2_strict(moto.url), twin.refuse)
    # FleetProxy: the compute nodes' instant fleet gets its template's security group and
    # IMDSv2 setting as on EC2 (moto leaves both out; ec2_fleet.py).
    proxy = FleetProxy(moto.url, refuse=strict, after=twin.after, like_ec2=True).__enter__()
    world = {
        "twin": twin,
        "proxy": proxy,
        "ec2": twin.ec2,
        "home": home,
        "key": ssh_key,
        "image": debian_image(twin.ec2),
        "work": work,
        "timings": {},
        "gmtk": {"segway_gmtk_source": str(standin), "segway_gmtk_checksum": f"sha256:{digest}"},
    }
    try:
        yield world
    finally:
        # SEGWAY_TWIN_KEEP=1 keeps the containers to look at after a failure (the next
        # run removes them: Ec2Twin.start removes what a twin of its name left).
        proxy.__exit__()
        if not os.environ.get("SEGWAY_TWIN_KEEP"):
            twin.close()
            sh("rm", "-rf", str(work))
        for name, (seconds, calls) in world["timings"].items():
            print(f"\ntwin {name}: {seconds:.0f} s, {calls} EC2 API calls")
        assert socket.gethostname() == hostname, "the twin renamed this machine"


def launch_vars(world: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The README's launch inputs, plus the endpoint's and the twin's (module text)."""
    return {
        "cluster_name": CLUSTER,
        "size": "small",
        "admin_cidr": f"{PUBLIC_GATEWAY}/32",
        "public_key_file": f"{world['key']}.pub",
        **TWIN_INPUTS,
        **world["gmtk"],
        "ami_id": world["image"],
        "volumes": [{"size": 2, "mount": "/data"}],
        "home_volume_size": 2,
        "summary_file": str(world["work"] / "summary.json"),
        **extra,
    }


def play(world: dict[str, Any], playbook: str, extra: dict[str, Any], **kw: Any) -> Run:
    # The key as at launch: ssh looks for its default keys in the account's home, not in
    # the test's HOME, so the README's "no key given" cannot be played here.
    extra = {"ssh_private_key_file": str(world["key"]), **extra}
    run = run_playbook(playbook, extra, endpoint=world["proxy"].url, home=world["home"], **kw)
    # Every run's whole output, to read after a failure (SEGWAY_TWIN_KEEP=1 keeps it).
    with (world["work"] / "runs.log").open("a") as log:
        log.write(f"\n===== {run.args}\n{run.output}")
    return run


def launch(world: dict[str, Any], name: str, **extra: Any) -> Run:
    world["proxy"].clear()
    started = time.monotonic()
    run = play(world, "launch.yml", launch_vars(world, **extra), timeout=1500)
    world["timings"][name] = (time.monotonic() - started, len(world["proxy"].calls))
    assert not world["twin"].errors, world["twin"].errors
    return run


def succeeded(run: Run) -> None:
    """Fail with the whole end of the run's output (an assert's message is cut short)."""
    if run.returncode != 0:
        pytest.fail(str(run), pytrace=False)


PIP_TASK = (
    "segway.cluster.segway_env : Install segway, genomedata and segtools at the pinned versions"
)
GMTK_TASK = "segway.cluster.segway_env : Compile GMTK (several minutes)"


def on_master(run: Run, task: str) -> str:
    """What the run did with this task on the master: changed, skipping, ..."""
    found = re.search(
        rf"TASK \[{re.escape(task)}\][^\n]*\n(?:[^\n]*\n)*?(\w+): \[master\]", run.output
    )
    assert found, f"no {task!r} for the master in the run:\n{run}"
    return found.group(1)


def pip_on_master(run: Run) -> str:
    """What the run did with segway_env's pip task on the master."""
    return on_master(run, PIP_TASK)


def gmtk_built(run: Run) -> bool:
    """Whether the run compiled GMTK on the master (its build block ran, or was skipped
    because the installed GMTK was built from the same archive)."""
    return GMTK_TASK in run.output and on_master(run, GMTK_TASK) == "changed"


def master_sh(world: dict[str, Any], script: str, user: str = "root") -> str:
    master = instances_of(world["ec2"], CLUSTER)[0]
    return world["twin"].exec(master["InstanceId"], script, user=user)


def node_ids(world: dict[str, Any]) -> dict[str, str]:
    return {name: i["InstanceId"] for name, i in nodes_of(world["ec2"], CLUSTER).items()}


# ------------------------------------------------------------------------------ steps


def test_launch_small_configures_over_ssh(twin: dict[str, Any]) -> None:
    run = launch(twin, "launch small")
    succeeded(run)
    assert run.changed > 0, run
    nodes = node_ids(twin)
    assert sorted(nodes) == ["master", "node001", "node002"], nodes
    # Configured over SSH as admin: the hostnames, the volumes by serial, the exports.
    assert master_sh(twin, "hostname").strip() == "master"
    # /home, /segway-build and /data are mounted from the loop devices the twin attached
    # as their volumes; Segway went onto the build volume with pip.
    master = twin["twin"].nodes[nodes["master"]]
    attached = {f"7:{a.minor}" for a in master.attached.values()}
    for path in ("/home", "/segway-build", "/data"):
        device = master_sh(twin, f"findmnt -rn -o MAJ:MIN --mountpoint {path}").strip()
        assert device in attached, (path, device, attached)
    exports = master_sh(twin, "cat /etc/ganesha/segway-exports.conf")
    assert '"/home"' in exports and '"/data"' in exports, exports
    assert pip_on_master(run) == "changed"
    # GMTK (the stand-in) was built from the controller's archive onto the build volume,
    # and a compute node runs it from there.
    assert gmtk_built(run), run
    gmtk = twin["twin"].exec(nodes["node001"], "bash -lc gmtkTriangulate", user="sgeadmin")
    assert gmtk.strip() == VERSION_LINE, gmtk
    summary = json.loads((twin["work"] / "summary.json").read_text())
    assert summary["configured"] is True, summary
    # The host keys went to the known_hosts under HOME that teardown deletes, not to the
    # one under the account's passwd home, where ssh would have put a "~/" path.
    assert (twin["home"] / ".ssh" / f"segway_{CLUSTER}_known_hosts").is_file()
    account_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert not (account_home / ".ssh" / f"segway_{CLUSTER}_known_hosts").exists()


def test_example_job_runs_on_a_compute_node(twin: dict[str, Any]) -> None:
    run = play(twin, "example_job.yml", {"cluster_name": CLUSTER}, timeout=900)
    succeeded(run)
    # The playbook itself fails unless the job ran on a compute node under the limit.
    assert re.search(r"host: node00[12]\b", run.output), run


def known_at(world: dict[str, Any], address: str) -> bool:
    """Whether ssh recorded a host key for `address` in the cluster's known_hosts (hashed
    names: Debian's ssh_config sets HashKnownHosts)."""
    known = world["home"] / ".ssh" / f"segway_{CLUSTER}_known_hosts"
    return sh("ssh-keygen", "-F", address, "-f", str(known)).returncode == 0


def test_status_shows_nodes_memory_jobs_and_cost(twin: dict[str, Any]) -> None:
    """status.yml as a controller inside the VPC runs it: ssh_address=private (this
    machine reaches the containers' private addresses, as a bastion would)."""
    master = instances_of(twin["ec2"], CLUSTER)[0]
    assert known_at(twin, master["PublicIpAddress"]), "launch went to the public address"
    assert not known_at(twin, master["PrivateIpAddress"])
    run = play(twin, "status.yml", {"cluster_name": CLUSTER, "ssh_address": "private"})
    succeeded(run)
    for word in ("master", "node001", "node002", "mem_requested", "per hour"):
        assert word in run.output, (word, run)
    assert run.changed == 0, run
    # Grid Engine was asked on the master by its private address.
    assert known_at(twin, master["PrivateIpAddress"])


def test_files_on_home_and_data_and_nfs_export(twin: dict[str, Any]) -> None:
    master_sh(twin, f"echo '{MARK}' > ~/results.txt", user="sgeadmin")
    master_sh(twin, f"echo '{MARK}' > /data/genome.txt")
    # Ganesha serves /data to the compute nodes for real (checked with libnfs).
    node = node_ids(twin)["node001"]
    master_ip = instances_of(twin["ec2"], CLUSTER)[0]["PrivateIpAddress"]
    twin["twin"].exec(node, "apt-get install -y -q --no-install-recommends libnfs-utils")
    # Ganesha refuses NFSv4 opens for its grace period (about 90 s) after it started.
    listing = twin["twin"].exec(
        node,
        f"for i in $(seq 60); do nfs-ls 'nfs://{master_ip}/data?version=4' && exit 0; sleep 3; "
        "done; exit 1",
    )
    assert "genome.txt" in listing, listing
    # What the twin mounts on the compute node in place of the NFS mount is that export.
    assert twin["twin"].exec(node, "cat /data/genome.txt").strip() == MARK


def tree_sums(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by its path relative to root."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


def master_sums(world: dict[str, Any], root: str) -> dict[str, str]:
    """tree_sums of a directory on the master."""
    listing = master_sh(world, f"cd {root} && find . -type f -exec sha256sum {{}} +")
    return {
        name.removeprefix("./"): digest
        for digest, name in (line.split(None, 1) for line in listing.splitlines() if line)
    }


def test_put_and_fetch_round_trip_over_ssh(twin: dict[str, Any], tmp_path: Path) -> None:
    """put.yml and fetch.yml as the README gives them for EC2: rsync over ssh to the master
    as admin, its far side run as sgeadmin through sudo (the inputs as at launch: region
    and endpoint from the environment, the key from play())."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "b.txt").write_text("beta\n" * 1000)
    (tree / "sub" / "c.txt").write_text("gamma\n")
    (tree / "sub" / "random.bin").write_bytes(os.urandom(1 << 20))
    wanted = tree_sums(tree)
    data = "/data/xfer"
    to_data = {"cluster_name": CLUSTER, "src": f"{tree}/", "dest": data}
    # --check on a master without rsync (as one configured before roles/common installed
    # it): it says a real run would install rsync, skips the dry run and succeeds.
    master_sh(twin, "mv /usr/bin/rsync /usr/bin/rsync.hidden")
    try:
        dry = play(twin, "put.yml", to_data, args=["--check"])
    finally:
        master_sh(twin, "mv /usr/bin/rsync.hidden /usr/bin/rsync")
    succeeded(dry)
    assert "rsync is not installed on the master" in dry.flat, dry
    assert "Nothing was transferred" in dry.flat, dry
    assert dry.changed == 1, dry  # the install a real run would make
    assert master_sh(twin, f"test -e {data} && echo there || echo absent").strip() == "absent"
    # Up to the home (src without a slash: it lands as dest/tree) and to /data (src/: its
    # contents straight into dest); both copies the cluster user's.
    to_home = {"cluster_name": CLUSTER, "src": str(tree), "dest": "/home/sgeadmin"}
    for extra, copy in ((to_home, "/home/sgeadmin/tree"), (to_data, data)):
        run = play(twin, "put.yml", extra)
        succeeded(run)
        assert run.changed > 0, run
        assert master_sums(twin, copy) == wanted, copy
        strangers = master_sh(twin, f"find {copy} ! -user sgeadmin")
        assert strangers.strip() == "", strangers
    again = play(twin, "put.yml", to_data)
    succeeded(again)
    assert again.changed == 0 and "0 item(s) changed" in again.flat, again
    # Back into a new directory here, made by fetch.
    back = tmp_path / "back"
    log = tmp_path / "logs" / "fetch.log"
    from_data = {"cluster_name": CLUSTER, "src": f"{data}/", "dest": str(back)}
    run = play(twin, "fetch.yml", {**from_data, "progress_log": str(log)})
    succeeded(run)
    assert run.changed > 0, run
    assert tree_sums(back) == wanted
    # rsync's output went to the progress log as it ran (the play named it first).
    assert f"tail -f {log}" in run.flat, run
    logged = log.read_text()
    assert f"Number of regular files transferred: {len(wanted)}" in logged, logged
    assert "100%" in logged, logged
    again = play(twin, "fetch.yml", from_data)
    succeeded(again)
    assert again.changed == 0 and "0 item(s) changed" in again.flat, again


def test_second_launch_changes_nothing(twin: dict[str, Any]) -> None:
    run = launch(twin, "launch small again")
    succeeded(run)
    assert run.changed == 0, run


def test_medium_waits_for_a_node_that_never_answers(twin: dict[str, Any]) -> None:
    world = twin["twin"]
    # The second new compute instance's container is made but not started: its SSH never
    # answers, as when an instance hangs at boot.
    world.hold = lambda inst: (
        not world.held and tags(inst).get("segway:role") == "compute" and len(world.nodes) >= 4
    )
    run = launch(twin, "launch medium (one node held)", size="medium", ssh_timeout=25)
    assert run.returncode != 0, run
    assert len(world.held) == 1, world.events
    held = next(iter(world.held))
    # Its name, as the master records it.
    name = {i: n for n, i in node_ids(twin).items()}.get(held)
    assert name in ("node003", "node004"), (held, node_ids(twin))
    assert "did not answer SSH" in run.flat and held in run.flat, run
    assert f"{name} ({held}" in run.flat, run
    # Only that node is named (any_errors_fatal fails the others into the rescue too),
    # and no node is configured while one is missing.
    others = set(node_ids(twin)) - {name}
    assert not [n for n in others if f"{n} (i-" in run.flat], run
    assert "PLAY [Check the inputs of every role]" not in run.output, run
    world.hold = None
    world.release(held)
    run = launch(twin, "launch medium (re-run)", size="medium")
    succeeded(run)
    nodes = node_ids(twin)
    assert sorted(nodes) == ["master", "node001", "node002", "node003", "node004"], nodes
    for node in ("node003", "node004"):
        out = master_sh(
            twin,
            f"qsub -sync y -b y -j y -o /dev/null -l h={node},mem_requested=100M /bin/true",
            user="sgeadmin",
        )
        assert "exited with exit code 0" in out, (node, out)


def test_remove_nodes(twin: dict[str, Any]) -> None:
    """remove_nodes.yml as the README gives it, on the dynamic inventory."""
    # As from inside the VPC: the inventory gives every node's private address.
    env = {
        "SEGWAY_CLUSTER": CLUSTER,
        "SEGWAY_SSH_PRIVATE_KEY_FILE": str(twin["key"]),
        "SEGWAY_SSH_ADDRESS": "private",
    }
    listing = run_inventory("--list", endpoint=twin["proxy"].url, home=twin["home"], env=env)
    assert listing.returncode == 0, listing.stderr
    inventory = json.loads(listing.stdout)
    assert {"node003", "node004"} <= set(inventory["compute"]["hosts"])
    found = instances_of(twin["ec2"], CLUSTER)
    names = node_name_map(found)
    for inst in found:
        host = inventory["_meta"]["hostvars"][names[inst["InstanceId"]]]
        assert host["ansible_host"] == inst["PrivateIpAddress"], host
        assert "ProxyCommand" not in host["ansible_ssh_common_args"], host
    ids_before = node_ids(twin)
    run = play(
        twin,
        "remove_nodes.yml",
        {"nodes": "node003,node004", **TWIN_INPUTS, **twin["gmtk"]},
        args=["-i", str(REPO / "inventory" / "ec2_segway.py")],
        env=env,
    )
    succeeded(run)
    hosts = master_sh(twin, "qconf -sel", user="sgeadmin").split()
    assert "node001" in hosts and not {"node003", "node004"} & set(hosts), hosts
    # Their instances are terminated (they stop costing); the other nodes run on.
    removed = {n: i for n, i in ids_before.items() if n in ("node003", "node004")}
    assert sorted(node_ids(twin)) == ["master", "node001", "node002"], node_ids(twin)
    states = {
        i["InstanceId"]: i["State"]["Name"]
        for r in twin["ec2"].describe_instances(InstanceIds=list(removed.values()))["Reservations"]
        for i in r["Instances"]
    }
    assert set(states.values()) == {"terminated"}, states
    twin["twin"].wait_quiet()
    assert len(twin["twin"].containers()) == 3, twin["twin"].containers()
    # configure.yml ran on every node over its private address.
    for inst in instances_of(twin["ec2"], CLUSTER):
        assert known_at(twin, inst["PrivateIpAddress"]), tags(inst)


def test_teardown_keeps_volumes_and_relaunch_reattaches(twin: dict[str, Any]) -> None:
    run = play(twin, "teardown.yml", {"cluster_name": CLUSTER, "confirm": True})
    succeeded(run)
    state = account_state(twin["ec2"])
    assert not state["instances"], state
    kept = {v for v, s in state["volumes"] if s == "available"}
    assert len(kept) == 3, state  # /home, /segway-build and /data
    twin["twin"].wait_quiet()
    assert twin["twin"].containers() == [], twin["twin"].containers()
    # The relaunch keeps the compute nodes off the internet (compute_public_ip=false), in a
    # subnet that maps no public address (in a default subnet launch refuses that), in the
    # kept volumes' zone: Ansible reaches them only through the master (ProxyCommand),
    # the default for a node without a public address, which no other step takes.
    ec2 = twin["ec2"]
    zone = ec2.describe_volumes(VolumeIds=sorted(kept))["Volumes"][0]["AvailabilityZone"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    private = ec2.create_subnet(
        VpcId=vpc["VpcId"], CidrBlock="172.31.200.0/24", AvailabilityZone=zone
    )["Subnet"]["SubnetId"]
    run = launch(
        twin,
        "relaunch with kept volumes, compute nodes private",
        subnet_id=private,
        compute_public_ip=False,
    )
    succeeded(run)
    assert master_sh(twin, "cat ~/results.txt", user="sgeadmin").strip() == MARK
    assert master_sh(twin, "cat /data/genome.txt").strip() == MARK
    # The new master found Segway at its pins on the kept build volume, and GMTK built from
    # the same archive: neither pip nor the GMTK build ran.
    assert pip_on_master(run) == "skipping", run
    assert not gmtk_built(run), run
    master, *compute = instances_of(ec2, CLUSTER)
    assert master.get("PublicIpAddress") and master["SubnetId"] == private, master
    assert len(compute) == 2 and all("PublicIpAddress" not in i for i in compute), compute
    for inst in compute:  # configure.yml reached them at their private address, proxied
        assert known_at(twin, inst["PrivateIpAddress"]), tags(inst)
    job = play(twin, "example_job.yml", {"cluster_name": CLUSTER}, timeout=900)
    succeeded(job)
    assert re.search(r"host: node00[12]\b", job.output), job


def test_teardown_delete_volumes_leaves_nothing(twin: dict[str, Any]) -> None:
    run = play(
        twin, "teardown.yml", {"cluster_name": CLUSTER, "confirm": True, "delete_volumes": True}
    )
    succeeded(run)
    twin["twin"].wait_quiet()
    state = account_state(twin["ec2"])
    assert not state["instances"], state
    # moto keeps a terminated instance's root volumes (its template's and one more) attached
    # at the image's root device, with no DeleteOnTermination in the answer; EC2 deletes
    # them with the instance, as the template asks. Every other volume must be gone.
    root = twin["ec2"].describe_images(ImageIds=[twin["image"]])["Images"][0]["RootDeviceName"]
    gone = {
        i["InstanceId"]
        for r in twin["ec2"].describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] == "terminated"
    }
    left = [
        v
        for v in twin["ec2"].describe_volumes()["Volumes"]
        if not v["Attachments"]
        or not all(a["InstanceId"] in gone and a["Device"] == root for a in v["Attachments"])
    ]
    assert not left, left
    assert not state["security_groups"] and not state["key_pairs"], state
    assert twin["twin"].containers() == []
    assert twin["twin"].loops() == []
    assert not list((twin["work"] / "volumes").glob("*.img"))
    assert not (twin["home"] / ".ssh" / f"segway_{CLUSTER}_known_hosts").exists()
    assert not twin["twin"].errors, twin["twin"].errors
