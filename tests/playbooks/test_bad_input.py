"""Bad input to playbooks/configure.yml fails before anything changes.

Each case runs the real playbook with ansible-playbook against this machine
(connection local): the validation tasks must stop the run before the first task
that could change the host, and the message must name the variable, the bad value
and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from refusal import assert_refused

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "configure.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

ONE_MASTER = """
master:
  hosts:
    master: {ansible_connection: local}
compute:
  hosts:
    node001: {ansible_connection: local}
"""
TWO_MASTERS = """
master:
  hosts:
    master: {ansible_connection: local}
    master2: {ansible_connection: local}
compute:
  hosts:
    node001: {ansible_connection: local}
"""

# A GMTK download (never fetched: validation stops the run first) and a well-formed sha256.
GMTK_URL = "https://example.org/gmtk/gmtk-1.4.4.tar.gz"
SHA256 = "sha256:" + "0123456789abcdef" * 4


def run_configure(tmp_path: Path, inventory: str, extra: dict) -> subprocess.CompletedProcess:
    inv = tmp_path / "inventory.yml"
    inv.write_text(inventory)
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inv), str(PLAYBOOK), "-e", json.dumps(extra)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("inventory", "extra", "expected"),
    [
        pytest.param(
            ONE_MASTER,
            {"common_cluster_uid": 0},
            ["common_cluster_user 'sgeadmin' (uid 0", "between 1000 and 59999"],
            id="uid-0",
        ),
        pytest.param(
            ONE_MASTER,
            {"common_cluster_user": "root"},
            ["common_cluster_user 'root'", "other than root"],
            id="user-root",
        ),
        pytest.param(
            ONE_MASTER,
            {"common_hostname": "Node_1"},
            ["common_hostname 'Node_1' is not allowed", "lowercase letters, digits and hyphens"],
            id="hostname",
        ),
        pytest.param(
            ONE_MASTER,
            {"common_private_ip": "10.0.0"},
            ["common_private_ip '10.0.0'", "not an IPv4 address"],
            id="private-ip",
        ),
        pytest.param(
            ONE_MASTER,
            {"common_ssh_key_type": "dsa"},
            ["common_ssh_key_type", "ed25519, rsa, ecdsa", "dsa"],
            id="key-type",
        ),
        pytest.param(
            ONE_MASTER,
            {"common_extra_hosts": [{"ip": "10.0.0.9"}]},
            ["common_extra_hosts entry", "{ip: ADDRESS, names: [NAME, ...]}"],
            id="extra-hosts",
        ),
        pytest.param(
            ONE_MASTER,
            {"sge_mem_reserve": "-1G"},
            ["sge_mem_reserve '-1G'", "non-negative sizes like 512M or 2G"],
            id="sge-negative-reserve",
        ),
        pytest.param(
            ONE_MASTER,
            {"sge_mem_reserve": "100000G"},
            ["node001: sge_slots", "sge_mem_reserve '100000G' must leave memory for jobs"],
            id="sge-reserve-too-big",
        ),
        pytest.param(
            ONE_MASTER,
            {"sge_slots": 0},
            ["node001: sge_slots '0' must be a whole number of at least 1"],
            id="sge-slots-0",
        ),
        pytest.param(
            ONE_MASTER,
            {"sge_default_mem_request": "3X"},
            ["sge_default_mem_request '3X'"],
            id="sge-default-request",
        ),
        pytest.param(
            ONE_MASTER,
            {"sge_remove_hosts": ["node099"]},
            ["node099 is not an exec host of this cluster"],
            id="sge-remove-unknown",
        ),
        pytest.param(
            ONE_MASTER,
            {"sge_remove_hosts": ["master"]},
            ["master is the master and cannot be removed"],
            id="sge-remove-master",
        ),
        pytest.param(
            ONE_MASTER,
            {"ebs_mount_volumes": [{"name": "d", "device": "/dev/sdf", "mount_point": "data"}]},
            ["ebs_mount_volumes entry d: mount_point 'data' must be an absolute path"],
            id="ebs-relative",
        ),
        pytest.param(
            ONE_MASTER,
            {
                "ebs_mount_volumes": [
                    {"name": "d", "device": "/dev/sdf", "mount_point": "/d", "fstype": "btrfs"}
                ]
            },
            ["value of fstype must be one of: ext4, xfs, got: btrfs found in ebs_mount_volumes"],
            id="ebs-fstype",
        ),
        pytest.param(
            ONE_MASTER,
            {"ebs_mount_volumes": [{"name": "d", "mount_point": "/d"}]},
            ["ebs_mount_volumes entry d: give volume_id (EC2) or device"],
            id="ebs-no-device",
        ),
        pytest.param(
            ONE_MASTER,
            {"ebs_mount_new_volume_owner": "no such user"},
            ["ebs_mount_new_volume_owner 'no such user' must be a user name"],
            id="ebs-new-volume-owner",
        ),
        pytest.param(
            ONE_MASTER,
            {
                "ebs_mount_volumes": [
                    {"name": "late", "volume_id": "vol-0fffffffffffffff1", "mount_point": "/d"}
                ],
                "ebs_mount_wait_timeout": 1,
            },
            ["volume 'late' (vol-0fffffffffffffff1) has no block device", "(waited 1 s)"],
            id="ebs-missing",
        ),
        pytest.param(
            ONE_MASTER,
            {"nfs_extra_clients": ["*"]},
            ["nfs_extra_clients ['*'] is not allowed", "`*`"],
            id="nfs-star",
        ),
        pytest.param(
            ONE_MASTER,
            {"nfs_server_implementation": "zfs"},
            ["nfs_server_implementation must be one of: kernel, ganesha, got: zfs"],
            id="nfs-impl",
        ),
        pytest.param(
            TWO_MASTERS,
            {},
            ["exactly one host in group 'master'", "'master', 'master2'"],
            id="two-masters",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_install": "conda"},
            ["segway_env_install", "one of: pip, existing", "got: conda"],
            id="segway-install",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_prefix": "/opt/venv"},
            ["segway_env_prefix '/opt/venv'", "inside the build path"],
            id="segway-prefix",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_segway_version": "latest"},
            ["segway_env_segway_version 'latest'", "release number like 3.0.7"],
            id="segway-version",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_gmtk_source": "/nonexistent/gmtk.tar.gz"},
            ["segway_env_gmtk_source '/nonexistent/gmtk.tar.gz' is not allowed"],
            id="gmtk-source",
        ),
        pytest.param(
            ONE_MASTER,
            {
                "segway_env_gmtk_source": GMTK_URL.replace("https:", "http:"),
                "segway_env_gmtk_checksum": SHA256,
            },
            [
                f"segway_env_gmtk_source '{GMTK_URL.replace('https:', 'http:')}' is not allowed",
                "an https URL (plain http is refused",
            ],
            id="gmtk-http",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_gmtk_source": GMTK_URL},
            [
                "segway_env_gmtk_checksum '' is not allowed with "
                f"segway_env_gmtk_source '{GMTK_URL}'",
                "sha256:HEX (64 hex digits",
            ],
            id="gmtk-url-without-checksum",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_gmtk_source": GMTK_URL, "segway_env_gmtk_checksum": "md5:" + "0" * 32},
            ["segway_env_gmtk_checksum 'md5:" + "0" * 32 + "' is not allowed", "sha256:HEX"],
            id="gmtk-md5",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_gmtk_source": GMTK_URL, "segway_env_gmtk_checksum": "sha256:abc123"},
            ["segway_env_gmtk_checksum 'sha256:abc123' is not allowed", "64 hex digits"],
            id="gmtk-short-sha256",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_gmtk_source": GMTK_URL, "segway_env_gmtk_checksum": "0" * 64},
            ["segway_env_gmtk_checksum '" + "0" * 64 + "' is not allowed", "sha256:HEX"],
            id="gmtk-sha256-without-prefix",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_cluster": "condor"},
            ["segway_env_cluster 'condor' is not allowed", "sge, slurm, pbs, lsf, local"],
            id="segway-cluster",
        ),
        pytest.param(
            ONE_MASTER,
            {"segway_env_stop_services": ["ssh"]},
            ["segway_env_stop_services ['ssh'] is not allowed"],
            id="stop-ssh",
        ),
    ],
)
def test_bad_input_fails_before_any_change(
    tmp_path: Path, inventory: str, extra: dict, expected: list[str]
) -> None:
    output = assert_refused(run_configure(tmp_path, inventory, extra), expected)
    # Nothing was changed: no task reported a change, and no change-making task ran.
    assert "Set the hostname" not in output


VALIDATE_SEGWAY_ENV = """
- name: Only the Segway environment's validate entry point
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the Segway environment settings
      ansible.builtin.include_role:
        name: segway.cluster.segway_env
        tasks_from: validate
"""


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(
            {"segway_env_gmtk_source": GMTK_URL, "segway_env_gmtk_checksum": SHA256},
            id="url-sha256",
        ),
        pytest.param({"segway_env_gmtk_source": "LOCAL"}, id="controller-file-without-checksum"),
        pytest.param(
            {"segway_env_gmtk_source": "LOCAL", "segway_env_gmtk_checksum": "OWN"},
            id="controller-file-with-checksum",
        ),
    ],
)
def test_good_gmtk_source_passes_validation(tmp_path: Path, extra: dict) -> None:
    """The GMTK checks refuse only what they should: an https URL with its sha256, and a
    file on the controller with or without one, pass the validate entry point."""
    archive = tmp_path / "gmtk-1.4.4.tar.gz"
    archive.write_bytes(b"not really an archive; validation does not open it")
    # Its own sha256, in capitals: the check compares hex digits, not their case.
    own = "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest().upper()
    extra = {k: {"LOCAL": str(archive), "OWN": own}.get(v, v) for k, v in extra.items()}
    (tmp_path / "inventory.yml").write_text(ONE_MASTER)
    (tmp_path / "validate.yml").write_text(VALIDATE_SEGWAY_ENV)
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(tmp_path / "inventory.yml"),
            str(tmp_path / "validate.yml"),
            "-e",
            json.dumps(extra),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


ONE_EC2_MASTER = """
master:
  hosts:
    master: {ansible_connection: local, segway_instance_id: i-0123456789abcdef0}
compute:
  hosts:
    node001: {ansible_connection: local, segway_instance_id: i-0123456789abcdef1}
"""
RELEASE = "https://melodi.ee.washington.edu/downloads/gmtk/gmtk-1.4.4.tar.gz"
RELEASE_SHA256 = "sha256:c6243f1b5c68910a4a0ea60a1b2285ede5ba771cfec3fa5ffa3699ecef6e87e0"
BUILT_FROM = "GMTK: built on the master from"


@pytest.mark.parametrize(
    ("inventory", "extra", "built_from"),
    [
        pytest.param(ONE_EC2_MASTER, {}, f"{BUILT_FROM} {RELEASE} ({RELEASE_SHA256})", id="ec2"),
        pytest.param(ONE_EC2_MASTER, {"segway_gmtk_source": ""}, None, id="ec2-opted-out"),
        pytest.param(ONE_MASTER, {}, None, id="local"),
    ],
)
def test_gmtk_release_is_the_ec2_default(
    tmp_path: Path, inventory: str, extra: dict, built_from: str | None
) -> None:
    """On EC2 (nodes with segway_instance_id) configure.yml builds GMTK's official release,
    checksum pinned, with no input; '' opts out; elsewhere nothing is built by default. A
    bad value checked after the GMTK checks stops each run before any change."""
    output = assert_refused(
        run_configure(tmp_path, inventory, {**extra, "segway_env_cluster": "condor"}),
        ["segway_env_cluster 'condor' is not allowed"],
    )
    if built_from:
        assert built_from in output
    else:
        assert BUILT_FROM not in output


def test_gmtk_checksum_mismatch_stops_before_any_change(tmp_path: Path) -> None:
    archive = tmp_path / "gmtk-1.4.4.tar.gz"
    archive.write_bytes(b"an archive whose sha256 is not the one given")
    wrong = "sha256:" + "0123456789abcdef" * 4
    output = assert_refused(
        run_configure(
            tmp_path,
            ONE_MASTER,
            {"segway_gmtk_source": str(archive), "segway_gmtk_checksum": wrong},
        ),
        [
            f"segway_env_gmtk_checksum '{wrong}' does not match segway_env_gmtk_source '{archive}'",
            f"(its sha256 is {hashlib.sha256(archive.read_bytes()).hexdigest()})",
        ],
    )
    assert "Set the hostname" not in output
