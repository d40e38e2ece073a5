"""Helpers of the EC2 tests: ansible-playbook and inventory runs, account snapshots."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from ec2_moto import FAKE_CREDENTIALS, REGION, VENV_BIN, aws_env

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
INVENTORY_SCRIPT = REPO / "inventory" / "ec2_segway.py"
MODULES = REPO / "plugins" / "modules"
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.M)


@dataclass
class Run:
    """One ansible-playbook run."""

    args: list[str]
    returncode: int
    output: str

    @property
    def changed(self) -> int:
        return sum(int(m.group(2)) for m in RECAP.finditer(self.output))

    @property
    def flat(self) -> str:
        """The output with line breaks folded, for message checks."""
        return " ".join(self.output.split())

    def __str__(self) -> str:
        return f"{' '.join(self.args)}\n(rc={self.returncode})\n{self.output[-6000:]}"

    __repr__ = __str__  # what an assertion message shows


def run_playbook(
    playbook: str,
    extra: Mapping[str, Any],
    *,
    endpoint: str,
    home: Path,
    timeout: int = 600,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Run:
    """ansible-playbook playbooks/<playbook> -e <extra as JSON> [args], with no stdin.

    env goes on top of the moto environment; credentials given there (another
    identity's, iam_user_credentials) replace the fake ones and their session token."""
    full_env = aws_env(endpoint, home)
    if env and "AWS_ACCESS_KEY_ID" in env:
        full_env.pop("AWS_SESSION_TOKEN", None)
    full_env.update(env or {})
    args = [
        str(VENV_BIN / "ansible-playbook"),
        str(PLAYBOOKS / playbook),
        "-e",
        json.dumps(extra),
        *args,
    ]
    proc = subprocess.run(
        args,
        cwd=REPO,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(args=args[1:], returncode=proc.returncode, output=proc.stdout + proc.stderr)


def iam_user_credentials(endpoint: str, name: str) -> dict[str, str]:
    """Credentials of a new IAM user in moto: a second identity in the account, whose
    GetCallerIdentity answers that user's ARN."""
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def run_inventory(
    *args: str, endpoint: str, home: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = aws_env(endpoint, home)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(INVENTORY_SCRIPT), *args],
        cwd=REPO,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_module(module: str, args: Mapping[str, Any], *, endpoint: str, home: Path) -> dict:
    """plugins/modules/<module>.py run the way Ansible runs it, on these args (plus moto's
    endpoint and region), without a playbook around it: its JSON result."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=home, delete=False) as handle:
        json.dump(
            {"ANSIBLE_MODULE_ARGS": {"region": REGION, "endpoint_url": endpoint, **args}}, handle
        )
    try:
        proc = subprocess.run(
            [sys.executable, str(MODULES / f"{module}.py"), handle.name],
            cwd=REPO,
            env=aws_env(endpoint, home, PYTHONPATH=str(REPO / ".collections")),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        Path(handle.name).unlink()
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def launch_node(ec2: Any, cluster: str, node: str, role: str, **extra_tags: str) -> str:
    """One running instance tagged as launch.yml tags a node."""
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    tags = {"segway:cluster": cluster, "segway:role": role, "segway:node": node, **extra_tags}
    return ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"][0]["InstanceId"]


def account_state(ec2: Any) -> dict[str, set]:
    """Everything a launch or teardown could create, change or delete."""
    reservations = ec2.describe_instances()["Reservations"]
    templates = ec2.describe_launch_templates()["LaunchTemplates"]
    # moto keeps the tags of a deleted launch template (EC2 drops them with it).
    live_templates = {t["LaunchTemplateId"] for t in templates}
    return {
        "instances": {
            i["InstanceId"]
            for r in reservations
            for i in r["Instances"]
            if i["State"]["Name"] != "terminated"
        },
        "volumes": {(v["VolumeId"], v["State"]) for v in ec2.describe_volumes()["Volumes"]},
        "security_groups": {
            g["GroupId"]
            for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"] != "default"
        },
        "key_pairs": {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]},
        "launch_templates": {t["LaunchTemplateName"] for t in templates},
        "spot_requests": {
            s["SpotInstanceRequestId"]
            for s in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]
        },
        "tags": {
            (t["ResourceId"], t["Key"], t["Value"])
            for t in ec2.describe_tags()["Tags"]
            if not t["ResourceId"].startswith("lt-") or t["ResourceId"] in live_templates
        },
    }


def instances_of(ec2: Any, cluster: str) -> list[dict[str, Any]]:
    """The cluster's instances that are not terminated, master first then by node name."""
    found = [
        i
        for r in ec2.describe_instances(
            Filters=[{"Name": "tag:segway:cluster", "Values": [cluster]}]
        )["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] not in ("terminated", "shutting-down")
    ]
    names = node_name_map(found)
    return sorted(
        found,
        key=lambda i: (names[i["InstanceId"]] != "master", names[i["InstanceId"]]),
    )


def node_name_map(found: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """{instance id: node name} of instances of one cluster, as launch.yml names them:
    the master's segway:node tag (master); a compute node's name as the master records it
    (its tags segway:names:1, :2, ... of space-separated i-<id>=nodeNNN pairs), else the
    node's own segway:node tag (older versions); '' for none."""
    recorded: dict[str, str] = {}
    for inst in found:
        if tags(inst).get("segway:role") == "master":
            for key, value in tags(inst).items():
                if key.startswith("segway:names:"):
                    recorded.update(pair.split("=", 1) for pair in value.split())
    return {
        i["InstanceId"]: (
            recorded.get(i["InstanceId"]) if tags(i).get("segway:role") == "compute" else None
        )
        or tags(i).get("segway:node", "")
        for i in found
    }


def nodes_of(ec2: Any, cluster: str) -> dict[str, dict[str, Any]]:
    """The cluster's instances that are not terminated by node name (node_name_map),
    master first then by name."""
    found = instances_of(ec2, cluster)
    names = node_name_map(found)
    return {names[i["InstanceId"]]: i for i in found}


def names_of(ec2: Any, cluster: str) -> list[str]:
    """The node names of the cluster's instances that are not terminated, in
    instances_of's order ('' for an instance without a name)."""
    found = instances_of(ec2, cluster)
    names = node_name_map(found)
    return [names[i["InstanceId"]] for i in found]


def tags(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def debian_image(ec2: Any) -> str:
    """Register an image named like Debian's official ones (moto ships none)."""
    return ec2.register_image(
        Name="debian-12-amd64-20250115-1993",
        Architecture="x86_64",
        RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
    )["ImageId"]
