"""Every bad input to launch.yml / teardown.yml fails before any AWS resource exists.

Each case is a real ansible-playbook run against moto_server. The cases run a few at a
time (none of them may create anything, so they cannot disturb each other); each must
fail with a message naming the input, its value and what is allowed, report no change,
and the account must hold exactly what it held before.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ec2_moto import ec2_client
from ec2_testlib import Run, account_state, debian_image, run_playbook

CASES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "unknown-size": (
        "launch.yml",
        {"size": "huge"},
        ["size 'huge' is not allowed", "use one of large, medium, small"],
    ),
    "size-extends-loop": (
        "launch.yml",
        {"size": "a", "custom_sizes": {"a": {"extends": "b"}, "b": {"extends": "a"}}},
        ["size 'a' extends itself: a -> b -> a"],
    ),
    "bad-autoscale": (
        "launch.yml",
        {"autoscale": "sometimes"},
        ["autoscale 'sometimes' is not allowed: use true or false"],
    ),
    "autoscale-with-instance-profile": (
        "launch.yml",
        {"autoscale": True, "iam_instance_profile": "my-profile"},
        [
            "autoscale=true gives the master the cluster's own instance profile",
            "iam_instance_profile 'my-profile' cannot be given with it",
        ],
    ),
    "bad-cluster-name": (
        "launch.yml",
        {"cluster_name": "My_Cluster"},
        ["cluster_name 'My_Cluster' must be 1-32 lowercase letters, digits and hyphens"],
    ),
    "unknown-provider": (
        "launch.yml",
        {"provider": "gcp"},
        ["provider 'gcp' is not allowed: use one of ec2"],
    ),
    "teardown-unknown-provider": (
        "teardown.yml",
        {"provider": "gcp", "confirm": True},
        ["provider 'gcp' is not allowed: use one of ec2"],
    ),
    "missing-admin-cidr": (
        "launch.yml",
        {"admin_cidr": None},
        ["admin_cidr is required", "There is no world-open default"],
    ),
    "world-admin-cidr": (
        "launch.yml",
        {"admin_cidr": "0.0.0.0/0"},
        ["admin_cidr ['0.0.0.0/0'] would open SSH to the whole internet", "allow_world_ssh=true"],
    ),
    "malformed-admin-cidr": (
        "launch.yml",
        {"admin_cidr": "203.0.113.7"},
        ["admin_cidr ['203.0.113.7'] is not allowed", "203.0.113.7/32"],
    ),
    "unknown-ssh-address": (
        "launch.yml",
        {"ssh_address": "vpn"},
        ["ssh_address 'vpn' is not allowed: use public", "or private"],
    ),
    "malformed-spot-price": (
        "launch.yml",
        {"spot": True, "spot_max_price": "cheap"},
        ["spot_max_price 'cheap' must be a positive hourly price in USD such as 0.12"],
    ),
    "spot-not-a-boolean": (
        "launch.yml",
        {"spot": "maybe"},
        ["spot 'maybe' is not allowed: use true or false."],
    ),
    "compute-public-ip-not-a-boolean": (
        "launch.yml",
        {"compute_public_ip": "sometimes"},
        ["compute_public_ip 'sometimes' is not allowed: use true or false."],
    ),
    "root-volume-not-a-number": (
        "launch.yml",
        {"root_volume_size": "big"},
        ["root_volume_size 'big' must be whole GiB from 8 to 16384"],
    ),
    "spot-price-without-spot": (
        "launch.yml",
        {"spot_max_price": "0.1"},
        ["only apply with spot=true (spot is False)"],
    ),
    "private-key-as-public": (
        "launch.yml",
        {"public_key_file": "PRIVATE"},
        ["must hold one OpenSSH public key", "private keys are refused"],
    ),
    "two-keys": (
        "launch.yml",
        {"key_name": "mine"},
        ["Give exactly one of key_name", "got key_name 'mine' and public_key_file"],
    ),
    "volume-bad-mount": (
        "launch.yml",
        {"volumes": [{"size": 5, "mount": "data", "colour": "red"}]},
        ["unknown key(s) colour", "mount 'data' must be an absolute path"],
    ),
    "volume-not-found": (
        "launch.yml",
        {"volumes": [{"id": "vol-0123456789abcdef0", "mount": "/data"}]},
        ["volume vol-0123456789abcdef0 not found in us-east-1"],
    ),
    "volumes-in-two-zones": (
        "launch.yml",
        {"volumes": [{"id": "VOL_A", "mount": "/a"}, {"id": "VOL_B", "mount": "/b"}]},
        ["more than one availability zone", "VOL_A in us-east-1a", "VOL_B in us-east-1b"],
    ),
    "zone-conflicts-with-volume": (
        "launch.yml",
        {"zone": "us-east-1c", "volumes": [{"id": "VOL_B", "mount": "/b"}]},
        ["zone 'us-east-1c' conflicts: the data volumes are in us-east-1b"],
    ),
    "snapshot-not-found": (
        "launch.yml",
        {"volumes": [{"snapshot": "snap-0123456789abcdef0", "mount": "/g"}]},
        ["snapshot snap-0123456789abcdef0 not found in us-east-1"],
    ),
    "subnet-not-found": (
        "launch.yml",
        {"subnet_id": "subnet-0123456789abcdef0"},
        ["subnet_id 'subnet-0123456789abcdef0' not found in us-east-1"],
    ),
    "image-not-found": (
        "launch.yml",
        {"ami_id": "ami-0123456789abcdef0"},
        ["ami_id 'ami-0123456789abcdef0' not found in us-east-1"],
    ),
    "instance-type-not-offered": (
        "launch.yml",
        {"compute_type": "m7i.gigantic"},
        ["Instance type m7i.gigantic", "is not offered in us-east-1a"],
    ),
    "compute-types-unknown": (
        "launch.yml",
        {"compute_types": ["m7i.xlarge", "m7i.nonesuch"]},
        [
            "compute_types: m7i.nonesuch (of m7i.xlarge, m7i.nonesuch) is not offered in",
            "Nothing was changed.",
        ],
    ),
    "compute-types-twice": (
        "launch.yml",
        {"compute_types": ["m7i.xlarge", "m6i.xlarge", "m7i.xlarge"]},
        [
            "compute_types ['m7i.xlarge', 'm6i.xlarge', 'm7i.xlarge'] is not allowed",
            "give a list of 1 to 20 different EC2 instance type names",
        ],
    ),
    "compute-types-empty": (
        "launch.yml",
        {"compute_types": []},
        ["compute_types [] is not allowed", "or leave it unset for [compute_type] (m7i.xlarge)"],
    ),
    "compute-types-not-a-type": (
        "launch.yml",
        {"compute_types": "m7i.xlarge, big one"},
        ["compute_types m7i.xlarge, big one is not allowed"],
    ),
    "security-group-name-taken": (
        "launch.yml",
        {"cluster_name": "taken"},
        [
            "cluster_name 'taken': security group",
            "already exists and is not tagged segway:cluster=taken",
        ],
    ),
    "negative-node-count": (
        "launch.yml",
        {"compute_count": "-1"},
        ["compute_count '-1' (size 'small') must be a whole number from 0 to 1000"],
    ),
    # The compute nodes' names are tags of the master: 40 tags of 9 names at most.
    "more-nodes-than-the-master-can-name": (
        "launch.yml",
        {"compute_count": 361},
        [
            "compute_count '361' (size 'small') is more than the 360 compute nodes an EC2",
            "EC2 allows an instance 50 tags",
        ],
    ),
    "volume-on-home": (
        "launch.yml",
        {"volumes": [{"size": 5, "mount": "/home"}]},
        ["mount '/home' is a system directory or the cluster's own /home"],
    ),
    "volume-dotdot": (
        "launch.yml",
        {"volumes": [{"size": 5, "mount": "/data/../etc"}]},
        ["mount '/data/../etc' must not contain '.' or '..' components"],
    ),
    "volume-iops-on-gp2": (
        "launch.yml",
        {"volumes": [{"size": 5, "mount": "/data", "type": "gp2", "iops": 3000}]},
        ["iops applies to type io1, io2, gp3 only, not gp2"],
    ),
    "volume-partition-on-new": (
        "launch.yml",
        {"volumes": [{"size": 5, "mount": "/data", "partition": 1}]},
        ["partition applies to a volume given by id or snapshot"],
    ),
    "home-volume-size": (
        "launch.yml",
        {"home_volume_size": "lots"},
        ["home_volume_size 'lots' must be whole GiB from 1 to 65536"],
    ),
    "build-volume-size": (
        "launch.yml",
        {"build_volume_size": -3},
        ["build_volume_size '-3' must be whole GiB from 1 to 65536, or 0 for no build volume"],
    ),
    "volume-of-another-cluster": (
        "launch.yml",
        {"volumes": [{"id": "VOL_C", "mount": "/theirs"}]},
        ["VOL_C belongs to another cluster (other)", "never attaches another cluster's volume"],
    ),
    "volume-name-taken": (
        "launch.yml",
        {"cluster_name": "clash", "volumes": [{"size": 1, "mount": "/data"}]},
        [
            "VOL_D is named clash-data, the name launch gives a new volume of cluster 'clash'",
            "Launch never takes over such a volume",
        ],
    ),
    "teardown-bad-confirm": (
        "teardown.yml",
        {"confirm": "maybe"},
        ["confirm 'maybe' and delete_volumes 'False' must be true or false"],
    ),
}


@pytest.fixture(scope="module")
def outcome(moto, home: Path, ssh_key: Path) -> dict[str, Any]:
    """Run every case against one account; record the account before and after."""
    moto.reset()
    ec2 = ec2_client(moto.url)
    image = debian_image(ec2)
    vol_a = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    vol_b = ec2.create_volume(AvailabilityZone="us-east-1b", Size=1)["VolumeId"]
    # Another cluster's volume, and someone's volume named as cluster "clash"'s would be.
    vol_c = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=1,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "segway:cluster", "Value": "other"}]}
        ],
    )["VolumeId"]
    vol_d = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=1,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "clash-data"}]}
        ],
    )["VolumeId"]
    # Someone's own group, named as launch would name cluster "taken"'s group.
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    ec2.create_security_group(
        GroupName="segway-taken", Description="not ours", VpcId=default_vpc["VpcId"]
    )
    base = {
        "admin_cidr": "203.0.113.7/32",
        "public_key_file": f"{ssh_key}.pub",
        "ami_id": image,
        "configure": False,
    }

    ids = {"VOL_A": vol_a, "VOL_B": vol_b, "VOL_C": vol_c, "VOL_D": vol_d}

    def prepare(index: int, extra: dict[str, Any]) -> dict[str, Any]:
        # One cluster name per case: launch holds a per-cluster lock, and the cases run
        # side by side.
        merged = {**base, "cluster_name": f"bad{index}", **extra}
        if merged.get("public_key_file") == "PRIVATE":
            merged["public_key_file"] = str(ssh_key)
        for vol in merged.get("volumes", []):
            if "id" in vol:
                vol["id"] = ids.get(vol["id"], vol["id"])
        return {k: v for k, v in merged.items() if v is not None}

    before = account_state(ec2)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(
                run_playbook, playbook, prepare(index, extra), endpoint=moto.url, home=home
            )
            for index, (name, (playbook, extra, _)) in enumerate(CASES.items())
        }
        runs: dict[str, Run] = {name: f.result() for name, f in futures.items()}
    return {
        "runs": runs,
        "before": before,
        "after": account_state(ec2),
        "ids": ids,
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_with_a_clear_message(outcome: dict[str, Any], case: str) -> None:
    run: Run = outcome["runs"][case]
    assert run.returncode != 0, str(run)
    for expected in CASES[case][2]:
        text = expected
        for placeholder, value in outcome["ids"].items():
            text = text.replace(placeholder, value)
        assert text in run.flat, f"{text!r} not in the output of\n{run}"
    assert run.changed == 0, str(run)


def test_no_bad_input_created_or_changed_anything(outcome: dict[str, Any]) -> None:
    before, after = outcome["before"], outcome["after"]
    for kind in before:
        new, gone = sorted(after[kind] - before[kind]), sorted(before[kind] - after[kind])
        assert after[kind] == before[kind], f"{kind}: new {new}, gone {gone}"
