"""provider=local (and the provider choice itself): bad input fails before anything exists.

Each case runs the real playbook with ansible-playbook. The run must stop in the input
checks, with a message naming the input, the bad value and what is allowed, and leave
nothing behind: no container, network or docker volume labelled with the cluster's
name, no image file and no loop device (volume_dir points into the test's tmp_path).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from refusal import assert_refused

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
CLUSTER = "badinput-local"


def run(playbook: str, extra: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    extra = {"cluster_name": CLUSTER, "volume_dir": str(tmp_path / "volumes"), **extra}
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), f"playbooks/{playbook}", "-e", json.dumps(extra)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def docker_objects(cluster: str) -> list[str]:
    """Containers, networks and volumes labelled with the cluster's name."""
    if shutil.which("docker") is None:
        return []
    found = []
    for kind in (["ps", "--all"], ["network", "ls"], ["volume", "ls"]):
        proc = subprocess.run(
            ["docker", *kind, "--quiet", "--filter", f"label=segway.cluster={cluster}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            found += proc.stdout.split()
    return found


def loops_under(path: Path) -> list[str]:
    proc = subprocess.run(
        ["losetup", "--list", "--noheadings", "-O", "NAME,BACK-FILE"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in proc.stdout.splitlines() if str(path) in line]


LOCAL = {"provider": "local"}


@pytest.mark.parametrize(
    ("playbook", "extra", "expected"),
    [
        pytest.param(
            "launch.yml",
            {"provider": "gcp"},
            ["provider 'gcp' is not allowed: use one of ec2, local"],
            id="launch-provider-gcp",
        ),
        pytest.param(
            "teardown.yml",
            {"provider": "gcp", "confirm": True},
            ["provider 'gcp' is not allowed: use one of ec2, local"],
            id="teardown-provider-gcp",
        ),
        pytest.param(
            "status.yml",
            {"provider": "gcp"},
            ["provider 'gcp' is not allowed: use one of ec2, local"],
            id="status-provider-gcp",
        ),
        pytest.param(
            "example_job.yml",
            {"provider": "gcp"},
            ["provider 'gcp' is not allowed: use one of ec2, local"],
            id="example-job-provider-gcp",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "size": "huge"},
            ["size 'huge' is not allowed: use one of large, medium, small"],
            id="local-unknown-size",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "compute_count": "two"},
            ["compute_count 'two'", "must be a whole number"],
            id="local-compute-count-word",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "compute_count": 33},
            ["compute_count '33' must be a whole number from 0 to 32 with provider=local"],
            id="local-compute-count-too-many",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "autoscale": True},
            [
                "autoscale=true is not allowed with provider=local",
                "autoscale=true is for EC2 clusters",
                "make balance",
            ],
            id="local-autoscale",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "cluster_name": "Bad_Name"},
            ["cluster_name 'Bad_Name' must be 1-32 lowercase letters"],
            id="local-cluster-name",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "volumes": [{"id": "vol-0123456789abcdef0", "mount": "/data"}]},
            ["volumes[0]", "id is EC2-only", "size '' must be whole GiB from 1 to 65536"],
            id="local-volume-id",
        ),
        pytest.param(
            "launch.yml",
            {
                **LOCAL,
                "volumes": [{"snapshot": "snap-0123456789abcdef0", "size": 5, "mount": "/g"}],
            },
            ["volumes[0]", "snapshot is EC2-only", "{size: GiB, mount: /path}"],
            id="local-volume-snapshot",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "volumes": [{"size": 2, "mount": "/home"}]},
            ["mount '/home' must be an absolute path outside", "/home and /segway-build"],
            id="local-volume-over-home",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "volumes": [{"size": 0, "mount": "/data"}]},
            ["size '0' must be whole GiB from 1 to 65536"],
            id="local-volume-size-0",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "volumes": [{"size": 1, "mount": "/a/x"}, {"size": 1, "mount": "/b/x"}]},
            ["the names (x, x) must differ"],
            id="local-volume-names-clash",
        ),
        pytest.param(
            "teardown.yml",
            {**LOCAL, "delete_volumes": "maybe", "confirm": True},
            ["delete_volumes 'maybe'", "true or false"],
            id="local-teardown-delete-volumes",
        ),
        pytest.param(
            "launch.yml",
            {**LOCAL, "local_mem_requested": "2 gigs"},
            ["local_mem_requested '2 gigs' is not allowed", "such as 3G or 1536M"],
            id="local-mem-requested-launch",
        ),
        pytest.param(
            "balance.yml",
            {**LOCAL, "local_mem_requested": "2GB"},
            ["local_mem_requested '2GB' is not allowed", "such as 3G or 1536M"],
            id="local-mem-requested-balance",
        ),
        pytest.param(
            "balance.yml",
            {**LOCAL, "compute_count": 3},
            ["compute_count '3' is not an input of balance.yml", "min_nodes and max_nodes"],
            id="balance-compute-count",
        ),
        pytest.param(
            "status.yml",
            {**LOCAL, "plot": "passes.jpg"},
            ["plot 'passes.jpg' is not allowed: give the path of a .png file"],
            id="status-plot-not-png",
        ),
        pytest.param(
            "status.yml",
            {**LOCAL, "plot": "/nonexistent-dir/passes.png"},
            ["plot '/nonexistent-dir/passes.png' is not allowed", "in a directory that exists"],
            id="status-plot-no-directory",
        ),
    ],
)
def test_bad_input_stops_before_anything_exists(
    tmp_path: Path, playbook: str, extra: dict, expected: list[str]
) -> None:
    assert_refused(run(playbook, extra, tmp_path), expected)
    # Nothing of the cluster exists: no docker object, image file or loop device.
    cluster = extra.get("cluster_name", CLUSTER)
    if re.fullmatch(r"[a-z][a-z0-9-]{0,31}", cluster):
        assert docker_objects(cluster) == []
    assert not (tmp_path / "volumes").exists()
    assert loops_under(tmp_path) == []
