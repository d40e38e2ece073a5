"""playbooks/status.yml with provider=ec2, against moto_server.

moto has instances but no machines behind them: status lists the nodes and the hourly
cost from EC2's state (through segway.cluster.ec2_cluster_info, the inventory script's own
code, and the segway.cluster.ec2_cluster_summary filter), and says that Grid Engine could
not be asked. The master's address is pointed at a closed port on 127.0.0.1 so no SSH
packet leaves this machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ec2"))

from ec2_moto import VENV_BIN, MotoServer, aws_env, ec2_client, free_port

REPO = Path(__file__).resolve().parents[2]

CLUSTER = "statustest"
# vars/prices.yml: m7i.large 0.1008, m7i.xlarge 0.2016.
NODES = [("master", "master", "m7i.large"), ("node001", "compute", "m7i.xlarge")]
NODES += [("node002", "compute", "m7i.xlarge")]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(log=tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


def launch_instances(endpoint: str) -> None:
    """The cluster's instances, tagged as roles/ec2_cluster tags them."""
    ec2 = ec2_client(endpoint)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for node, role, itype in NODES:
        tags = {"segway:cluster": CLUSTER, "segway:role": role, "segway:node": node}
        tags["segway:market"] = "on-demand"
        ec2.run_instances(
            ImageId=image,
            InstanceType=itype,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        )


def test_status_lists_nodes_and_cost_and_says_grid_engine_is_unreachable(
    moto: MotoServer, tmp_path: Path
) -> None:
    launch_instances(moto.url)
    closed_port = free_port()
    extra = {
        "provider": "ec2",
        "cluster_name": CLUSTER,
        "endpoint_url": moto.url,
        "status_timeout": 3,
        # No SSH to moto's made-up public addresses: a closed port here instead.
        "ansible_host": "127.0.0.1",
        "ansible_port": closed_port,
    }
    (tmp_path / ".ssh").mkdir(mode=0o700)
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/status.yml", "-e", json.dumps(extra)],
        cwd=REPO,
        env=aws_env(moto.url, tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 0, output
    for node, role, itype in NODES:
        assert re.search(
            rf"'? *{node} {role} \S+ private \S+ {re.escape(itype)} on-demand i-", output
        ), (
            node,
            output,
        )
    assert "Estimated cost: $0.5040 per hour" in output, output
    assert "Grid Engine not shown: master (127.0.0.1) did not answer" in output, output
    assert re.search(r"changed=[1-9]", output) is None, output
