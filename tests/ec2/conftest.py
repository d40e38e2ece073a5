"""Fixtures for the EC2 tests: one moto_server per session, real ansible-playbook runs.

moto_server (from this venv) stands in for EC2. The playbooks reach it through
AWS_ENDPOINT_URL (boto3 honours it; the role passes it on as endpoint_url), with fake
credentials and a throw-away HOME, so no real account or SSH configuration is touched.
moto has no hosts to log into: every launch here runs with configure=false, the
explicit switch that skips waiting for SSH and configure.yml.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ec2_moto import MotoServer


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    server = MotoServer(log=log).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME for the runs: known_hosts files and Ansible's temp files land here."""
    path = tmp_path_factory.mktemp("home")
    (path / ".ssh").mkdir(mode=0o700)
    return path


@pytest.fixture(scope="session")
def ssh_key(home: Path) -> Path:
    """An ed25519 key pair; the test imports its public half."""
    key = home / ".ssh" / "id_segway_test"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True
    )
    return key
