"""teardown.yml and remove_nodes.yml in a shared account: what is not the cluster's stays.

Real ansible-playbook runs against moto_server through AwsProxy with ec2_strict on:
moto deletes a security group that an instance still uses, EC2 refuses
(DependencyViolation), and the proxy answers as EC2 does, so the runs meet EC2's rules.
The clusters are made with boto3, tagged as launch tags them (segway:cluster,
segway:owner, the volumes' segway:* tags), so these tests do not depend on launch.

- alpha (owned by identity A): another cluster's instance was put in alpha's security
  group. Teardown terminates alpha, deletes its templates (the launch lock too) and key
  pair, keeps the group without trying to delete it (no two-minute retry), names the
  instance that holds it and ends with rc 0 (the cluster is gone; only the free group is
  left, and the last message says how to finish). Nothing outside alpha changes. Once
  that instance is gone, teardown again deletes the group.
- gamma (made by an older version: no segway:owner): the confirmation plan lists each
  volume by name and id, what is kept and what is deleted, /home's volume called out;
  another identity may tear it down.
- delta (owned by A) seen by identity B (an IAM user of the same account): teardown
  and remove_nodes.yml stop, naming A, and change nothing; with take_over=true they go on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from ec2_moto import (
    FAKE_CREDENTIALS,
    REGION,
    AwsProxy,
    ec2_client,
    ec2_strict,
)
from ec2_testlib import INVENTORY_SCRIPT, Run, account_state, iam_user_credentials, run_playbook

UBUNTU_OWNER = "099720109477"


# ---------------------------------------------------------------- helpers


def identity_arn(endpoint: str, key_id: str, secret: str) -> str:
    sts = boto3.client(
        "sts",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    return sts.get_caller_identity()["Arn"]


def run_playbook_as(
    playbook: str,
    extra: Mapping[str, Any],
    *,
    endpoint: str,
    home: Path,
    creds: Mapping[str, str] | None = None,
    inventory: bool = False,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Run:
    """ansible-playbook playbooks/<playbook> -e <extra as JSON> with the given identity's
    credentials (default: A's), optionally over inventory/ec2_segway.py."""
    return run_playbook(
        playbook,
        extra,
        endpoint=endpoint,
        home=home,
        timeout=900,
        env={**(creds or {}), **(env or {})},
        args=(*(["-i", str(INVENTORY_SCRIPT)] if inventory else []), *args),
    )


def spec(kind: str, values: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in values.items()]}]


def make_cluster(
    ec2: Any, name: str, owner: str | None, *, image: str, public_key: bytes, zone: str
) -> dict[str, Any]:
    """A cluster as launch leaves it: group, imported key, templates (and the launch
    lock), master and one compute node, /home and a data volume created by launch, a
    volume the user attached by id, and a created volume kept by an earlier teardown."""
    base = {"segway:cluster": name, **({"segway:owner": owner} if owner else {})}
    prefix = f"segway-{name}"
    group = ec2.create_security_group(
        GroupName=prefix,
        Description=f"segway.cluster {name}",
        TagSpecifications=spec("security-group", base),
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]}],
    )
    ec2.import_key_pair(
        KeyName=prefix, PublicKeyMaterial=public_key, TagSpecifications=spec("key-pair", base)
    )
    templates = [f"{prefix}-master-m7i.large", f"{prefix}-launch-lock"]
    for template in templates:
        ec2.create_launch_template(
            LaunchTemplateName=template,
            LaunchTemplateData={"InstanceType": "m7i.large"},
            TagSpecifications=spec("launch-template", base),
        )
    nodes = {}
    for node, role in (("master", "master"), ("node001", "compute")):
        nodes[node] = ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            InstanceType="m7i.large",
            KeyName=prefix,
            SecurityGroupIds=[group],
            Placement={"AvailabilityZone": zone},
            TagSpecifications=spec(
                "instance",
                {**base, "segway:role": role, "segway:node": node, "Name": f"{name}-{node}"},
            ),
        )["Instances"][0]["InstanceId"]

    def volume(tagged: Mapping[str, str], device: str | None) -> str:
        vol = ec2.create_volume(
            AvailabilityZone=zone, Size=1, TagSpecifications=spec("volume", tagged)
        )["VolumeId"]
        if device:
            ec2.attach_volume(VolumeId=vol, InstanceId=nodes["master"], Device=device)
        return vol

    def created(vol: str, mount: str, fmt: str, **more: str) -> dict[str, str]:
        return {
            **base,
            "segway:volume": vol,
            "Name": f"{name}-{vol}",
            "segway:mount": mount,
            "segway:shared": "true",
            "segway:format": fmt,
            **more,
        }

    volumes = {
        "home": volume(created("home", "/home", "if_blank"), "/dev/sdf"),
        "genomes": volume(
            created("genomes", "/genomes", "never", **{"segway:fstype": "xfs"}), "/dev/sdg"
        ),
        "data": volume(
            {
                "Name": f"{name}-users-data",
                "segway:attached-to": name,
                "segway:mount": "/data",
                "segway:shared": "true",
                "segway:format": "never",
                "segway:partition": "1",
            },
            "/dev/sdh",
        ),
        "scratch": volume(created("scratch", "/scratch", "if_blank"), None),
    }
    return {
        "name": name,
        "group": group,
        "key": prefix,
        "templates": templates,
        "instances": nodes,
        "volumes": volumes,
    }


def cluster_ids(cluster: Mapping[str, Any], ec2: Any) -> set[str]:
    """Every id and name of the cluster's own resources (its root volumes too)."""
    ids = {cluster["group"], cluster["key"], *cluster["templates"], *cluster["instances"].values()}
    ids |= {v for k, v in cluster["volumes"].items() if k != "data"}
    for reservation in ec2.describe_instances(InstanceIds=list(cluster["instances"].values()))[
        "Reservations"
    ]:
        for inst in reservation["Instances"]:
            ids |= {b["Ebs"]["VolumeId"] for b in inst["BlockDeviceMappings"] if "Ebs" in b}
    templates = ec2.describe_launch_templates(
        Filters=[{"Name": "tag:segway:cluster", "Values": [cluster["name"]]}]
    )["LaunchTemplates"]
    ids |= {t["LaunchTemplateId"] for t in templates}
    ids |= {k["KeyPairId"] for k in ec2.describe_key_pairs(KeyNames=[cluster["key"]])["KeyPairs"]}
    return ids


def foreign_state(ec2: Any, ours: set[str], attached: set[str]) -> dict[str, set]:
    """account_state without the clusters' own resources (ours). A volume the user
    attached by id (attached) stays in, its tags too: only its attachment state may
    change (teardown detaches it)."""
    state = account_state(ec2)
    return {
        "instances": state["instances"] - ours,
        "volumes": {(v, "-" if v in attached else s) for v, s in state["volumes"] if v not in ours},
        "security_groups": state["security_groups"] - ours,
        "key_pairs": state["key_pairs"] - ours,
        "launch_templates": state["launch_templates"] - ours,
        "spot_requests": state["spot_requests"],
        "tags": {t for t in state["tags"] if t[0] not in ours},
    }


def live(ec2: Any, instance_ids: list[str]) -> list[str]:
    found = ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]
    return [
        i["InstanceId"]
        for r in found
        for i in r["Instances"]
        if i["State"]["Name"] not in ("terminated", "shutting-down")
    ]


# ---------------------------------------------------------------- the account


@pytest.fixture(scope="module")
def world(moto, home: Path, ssh_key: Path) -> Iterator[dict[str, Any]]:
    """A fresh account, identity B (an IAM user beside A, the default credentials), the
    user's own instance, group, key and volume, and the strict proxy."""
    moto.reset()
    ec2 = ec2_client(moto.url)
    creds_b = iam_user_credentials(moto.url, "bob")
    arn_a = identity_arn(
        moto.url, FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    )
    arn_b = identity_arn(moto.url, creds_b["AWS_ACCESS_KEY_ID"], creds_b["AWS_SECRET_ACCESS_KEY"])
    # moto answers each identity's own ARN: the owner check has two owners to tell apart.
    assert arn_a != arn_b and arn_b.endswith(":user/bob"), (arn_a, arn_b)
    image = ec2.describe_images(Owners=[UBUNTU_OWNER])["Images"][0]["ImageId"]
    # The user's own things, which no teardown may touch.
    web_group = ec2.create_security_group(GroupName="web", Description="the user's")["GroupId"]
    ec2.import_key_pair(
        KeyName="users-own-key", PublicKeyMaterial=Path(f"{ssh_key}.pub").read_bytes()
    )
    web = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        KeyName="users-own-key",
        SecurityGroupIds=[web_group],
        TagSpecifications=spec("instance", {"Name": "web"}),
    )["Instances"][0]["InstanceId"]
    ec2.create_volume(
        AvailabilityZone="us-east-1b",
        Size=1,
        TagSpecifications=spec("volume", {"Name": "alpha-home"}),
    )
    with AwsProxy(moto.url, refuse=ec2_strict(moto.url)) as proxy:
        yield {
            "moto": moto,
            "ec2": ec2,
            "home": home,
            "image": image,
            "public_key": Path(f"{ssh_key}.pub").read_bytes(),
            "arn_a": arn_a,
            "arn_b": arn_b,
            "creds_b": creds_b,
            "web": web,
            "proxy": proxy,
        }


def teardown(world: dict[str, Any], creds: Mapping[str, str] | None = None, **extra: Any) -> Run:
    return run_playbook_as(
        "teardown.yml", extra, endpoint=world["proxy"].url, home=world["home"], creds=creds
    )


# ---------------------------------------------------------------- the strict proxy


def test_strict_proxy_refuses_what_ec2_refuses_and_moto_allows(world: dict[str, Any]) -> None:
    """moto alone deletes a security group an instance uses; through ec2_strict it is
    refused as EC2 refuses it, and so are a volume attached twice or onto a used device
    and an attached volume deleted. An instance's group is free once it is terminated."""
    ec2, image = world["ec2"], world["image"]
    strict = ec2_client(world["proxy"].url)
    lax_group = ec2.create_security_group(GroupName="probe-lax", Description="probe")["GroupId"]
    group = ec2.create_security_group(GroupName="probe", Description="probe")["GroupId"]
    probe = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, SecurityGroupIds=[group, lax_group]
    )["Instances"][0]
    ec2.delete_security_group(GroupId=lax_group)  # moto: deleted while in use
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [lax_group]}])[
        "SecurityGroups"
    ]

    def refused(call: Any, **kwargs: Any) -> dict[str, str]:
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        return err.value.response["Error"]

    error = refused(strict.delete_security_group, GroupId=group)
    assert error == {
        "Code": "DependencyViolation",
        "Message": f"resource {group} has a dependent object",
    }
    zone = probe["Placement"]["AvailabilityZone"]
    vol = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
    other = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
    strict.attach_volume(VolumeId=vol, InstanceId=probe["InstanceId"], Device="/dev/sdf")
    assert refused(
        strict.attach_volume, VolumeId=other, InstanceId=probe["InstanceId"], Device="/dev/sdf"
    ) == {
        "Code": "InvalidParameterValue",
        "Message": "Invalid value '/dev/sdf' for unixDevice. "
        "Attachment point /dev/sdf is already in use",
    }
    assert refused(
        strict.attach_volume, VolumeId=vol, InstanceId=probe["InstanceId"], Device="/dev/sdg"
    ) == {"Code": "VolumeInUse", "Message": f"{vol} is already attached to an instance"}
    assert refused(strict.delete_volume, VolumeId=vol)["Code"] == "VolumeInUse"
    assert world["proxy"].refused[-4:] == [
        "DeleteSecurityGroup",
        "AttachVolume",
        "AttachVolume",
        "DeleteVolume",
    ]
    strict.detach_volume(VolumeId=vol, InstanceId=probe["InstanceId"])
    strict.delete_volume(VolumeId=vol)
    ec2.delete_volume(VolumeId=other)
    ec2.terminate_instances(InstanceIds=[probe["InstanceId"]])
    strict.delete_security_group(GroupId=group)  # moto keeps the terminated one's interface


# ---------------------------------------------------------------- a group another instance holds


@pytest.fixture(scope="module")
def held(world: dict[str, Any]) -> dict[str, Any]:
    """alpha (A's), and beta's master put into alpha's security group as well as its own."""
    ec2 = world["ec2"]
    alpha = make_cluster(
        ec2,
        "alpha",
        world["arn_a"],
        image=world["image"],
        public_key=world["public_key"],
        zone="us-east-1b",
    )
    beta_group = ec2.create_security_group(
        GroupName="segway-beta",
        Description="segway.cluster beta",
        TagSpecifications=spec("security-group", {"segway:cluster": "beta"}),
    )["GroupId"]
    intruder = ec2.run_instances(
        ImageId=world["image"],
        MinCount=1,
        MaxCount=1,
        SecurityGroupIds=[beta_group, alpha["group"]],
        TagSpecifications=spec(
            "instance",
            {
                "segway:cluster": "beta",
                "segway:role": "master",
                "segway:node": "master",
                "Name": "beta-master",
            },
        ),
    )["Instances"][0]["InstanceId"]
    ours, attached = cluster_ids(alpha, ec2), {alpha["volumes"]["data"]}
    before = foreign_state(ec2, ours, attached)
    world["proxy"].clear()
    run = teardown(world, cluster_name="alpha", confirm=True)
    return {
        "alpha": alpha,
        "intruder": intruder,
        "run": run,
        "calls": world["proxy"].counts(),
        "before": before,
        "after": foreign_state(ec2, ours, attached),
    }


def test_teardown_keeps_a_group_another_instance_uses_and_says_why(
    world: dict[str, Any], held: dict[str, Any]
) -> None:
    ec2, alpha, run = world["ec2"], held["alpha"], held["run"]
    assert run.returncode == 0, str(run)
    group = alpha["group"]
    assert (
        f"keep security group {group} (segway-alpha) is kept: EC2 refuses to delete it while "
        f"instance {held['intruder']} (Name beta-master, cluster beta, running) uses it"
    ) in run.flat, str(run)
    assert (
        f"NOT deleted: security group {group} (segway-alpha) is kept: EC2 refuses to delete it "
        f"while instance {held['intruder']} (Name beta-master, cluster beta, running) uses it. "
        "To finish, remove that instance from the group (or terminate it), then run teardown "
        "again."
    ) in run.flat, str(run)
    # Everything else of alpha is gone.
    assert live(ec2, list(alpha["instances"].values())) == []
    names = {t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]}
    assert not names & set(alpha["templates"])  # the launch lock too
    assert "segway-alpha" not in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    # Kept at once: no DeleteSecurityGroup was sent (and so no two-minute retry).
    assert held["calls"]["DeleteSecurityGroup"] == 0
    assert world["proxy"].refused == []


def test_teardown_changes_nothing_outside_the_cluster(held: dict[str, Any]) -> None:
    before, after = held["before"], held["after"]
    for kind in before:
        new, gone = sorted(after[kind] - before[kind]), sorted(before[kind] - after[kind])
        assert after[kind] == before[kind], f"{kind}: new {new}, gone {gone}"


def test_teardown_again_deletes_the_group_once_it_is_free(
    world: dict[str, Any], held: dict[str, Any]
) -> None:
    ec2, group = world["ec2"], held["alpha"]["group"]
    # moto does not take an instance out of a group (ModifyInstanceAttribute adds to it),
    # so the holder is terminated instead.
    ec2.terminate_instances(InstanceIds=[held["intruder"]])
    run = teardown(world, cluster_name="alpha", confirm=True)
    assert run.returncode == 0, str(run)
    assert f"delete security group {group} (segway-alpha)" in run.flat
    assert "NOT deleted" not in run.flat
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [group]}])[
        "SecurityGroups"
    ]
    assert ec2.describe_security_groups(GroupNames=["segway-beta"])["SecurityGroups"]
    assert live(ec2, [world["web"]]) == [world["web"]]


# ---------------------------------------------------------------- the plan


@pytest.fixture(scope="module")
def gamma(world: dict[str, Any]) -> dict[str, Any]:
    """gamma, made by an older version (no segway:owner), and B's plans for it."""
    ec2 = world["ec2"]
    cluster = make_cluster(
        ec2, "gamma", None, image=world["image"], public_key=world["public_key"], zone="us-east-1c"
    )
    before = account_state(ec2)
    keep = teardown(world, world["creds_b"], cluster_name="gamma")
    delete = teardown(world, world["creds_b"], cluster_name="gamma", delete_volumes=True)
    return {
        "cluster": cluster,
        "keep": keep,
        "delete": delete,
        "before": before,
        "after": account_state(ec2),
    }


HOME_LABEL = "(home, /home: the files of the cluster user)"
USERS_LABEL = "(gamma-users-data, /data: yours, attached by id; never deleted)"


def test_plan_lists_kept_and_deleted_volumes_by_name_and_id(gamma: dict[str, Any]) -> None:
    vols, keep, delete = gamma["cluster"]["volumes"], gamma["keep"], gamma["delete"]
    for run in (keep, delete):
        assert run.returncode != 0, str(run)  # no terminal to confirm on
        assert "there is no terminal to ask on" in run.flat, str(run)
        assert f"detach volume {vols['home']} {HOME_LABEL} (/dev/sdf of master)" in run.flat
        assert f"detach volume {vols['data']} {USERS_LABEL} (/dev/sdh of master)" in run.flat
        # The user's volume is kept even with delete_volumes=true.
        assert f"keep volume {vols['data']} {USERS_LABEL}" in run.flat
        assert "delete launch template segway-gamma-launch-lock (the launch lock)" in run.flat
    for name, label in (
        ("home", HOME_LABEL),
        ("genomes", "(genomes, /genomes)"),
        ("scratch", "(scratch, /scratch)"),
    ):
        assert f"keep volume {vols[name]} {label}" in keep.flat, str(keep)
        assert f"DELETE volume {vols[name]} {label} and its data (delete_volumes=true)" in (
            delete.flat
        ), str(delete)
        assert f"keep volume {vols[name]} " not in delete.flat
    assert f"DELETE volume {vols['data']}" not in delete.flat
    assert gamma["after"] == gamma["before"]


def test_a_cluster_without_owner_tags_counts_as_the_callers(
    world: dict[str, Any], gamma: dict[str, Any]
) -> None:
    ec2, cluster = world["ec2"], gamma["cluster"]
    run = teardown(world, world["creds_b"], cluster_name="gamma", confirm=True)
    assert run.returncode == 0, str(run)
    assert "belongs to" not in run.flat
    assert live(ec2, list(cluster["instances"].values())) == []
    assert (
        "Kept volumes: " in run.flat
        and f"{cluster['volumes']['home']} (home, /home: the files of the cluster user)" in run.flat
    )


# ---------------------------------------------------------------- two owners


@pytest.fixture(scope="module")
def delta(world: dict[str, Any]) -> dict[str, Any]:
    """delta, A's cluster; B tries teardown and remove_nodes.yml on it."""
    ec2 = world["ec2"]
    cluster = make_cluster(
        ec2,
        "delta",
        world["arn_a"],
        image=world["image"],
        public_key=world["public_key"],
        zone="us-east-1d",
    )
    before = account_state(ec2)
    down = teardown(world, world["creds_b"], cluster_name="delta", confirm=True)
    remove = run_playbook_as(
        "remove_nodes.yml",
        {"nodes": "node001"},
        endpoint=world["proxy"].url,
        home=world["home"],
        creds=world["creds_b"],
        inventory=True,
        env={"SEGWAY_CLUSTER": "delta"},
    )
    return {
        "cluster": cluster,
        "down": down,
        "remove": remove,
        "before": before,
        "after": account_state(ec2),
    }


def test_another_identitys_teardown_and_remove_nodes_stop_and_change_nothing(
    world: dict[str, Any], delta: dict[str, Any]
) -> None:
    arn_a, arn_b = world["arn_a"], world["arn_b"]
    down, remove = delta["down"], delta["remove"]
    assert down.returncode != 0, str(down)
    assert f"Cluster delta belongs to {arn_a}, not to you ({arn_b})" in down.flat, str(down)
    for resource in (
        *delta["cluster"]["instances"].values(),
        delta["cluster"]["group"],
        "segway-delta",
    ):
        assert resource in down.flat
    assert (
        "Nothing was changed. To act on the cluster anyway, re-run with -e take_over=true."
        in down.flat
    )
    assert "terminate instance" not in down.flat  # stopped before the plan
    assert remove.returncode != 0, str(remove)
    assert f"Cluster delta belongs to {arn_a}, not to you ({arn_b})" in remove.flat, str(remove)
    assert "-e take_over=true" in remove.flat
    # Stopped on localhost, before any node was contacted.
    assert "UNREACHABLE" not in remove.output and "Gathering Facts" not in remove.output, str(
        remove
    )
    assert delta["after"] == delta["before"]


def test_take_over_lets_another_identity_act(world: dict[str, Any], delta: dict[str, Any]) -> None:
    ec2, cluster = world["ec2"], delta["cluster"]
    # remove_nodes.yml passes the owner check and goes on to the nodes, which moto's
    # addresses do not answer (so the run ends unreachable, after the check).
    remove = run_playbook_as(
        "remove_nodes.yml",
        {"nodes": "node001", "take_over": True},
        endpoint=world["proxy"].url,
        home=world["home"],
        creds=world["creds_b"],
        inventory=True,
        env={"SEGWAY_CLUSTER": "delta", "ANSIBLE_TIMEOUT": "3"},
    )
    assert f"take_over=true: acting on cluster delta although {world['arn_a']} owns" in remove.flat
    assert "belongs to" not in remove.flat
    assert "PLAY [Check the inputs of every role]" in remove.output, str(remove)
    down = teardown(world, world["creds_b"], cluster_name="delta", confirm=True, take_over=True)
    assert down.returncode == 0, str(down)
    assert "Cluster delta is torn down." in down.flat
    assert live(ec2, list(cluster["instances"].values())) == []
    assert not ec2.describe_security_groups(
        Filters=[{"Name": "group-id", "Values": [cluster["group"]]}]
    )["SecurityGroups"]
