"""launch.yml and teardown.yml end to end against moto_server.

One account, in order: cluster alpha is launched (size small, spot compute nodes, three
data volumes), re-launched (no change), grown to medium (only the new nodes), listed by
the inventory script; cluster beta is launched beside it through a proxy that has no
spot capacity (first without, then with the on-demand fallback); alpha is torn down
(beta untouched, data volumes kept), torn down again (no-op), and its created volumes
deleted on request; beta's teardown without confirmation and without a terminal stops.
alpha and beta are launched at the same time, to keep the suite short. What moto cannot
show is said where it matters. Every run goes through ``FleetProxy`` (ec2_fleet.py), which
keeps the requests and launches a fleet's instances with their template's security group
and IMDSv2 as EC2 does (moto leaves both out).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ec2_fleet import FleetProxy
from ec2_moto import ec2_client
from ec2_testlib import (
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

ADMIN = "203.0.113.7/32"
# moto's answer to GetCallerIdentity for the tests' fake credentials.
OWNER = "arn:aws:sts::123456789012:user/moto"
UBUNTU_OWNER = "099720109477"
UBUNTU_NAME = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"


@pytest.fixture(scope="module")
def world(
    moto, home: Path, ssh_key: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """A fresh account with a Debian-named image, a user's volume and a snapshot."""
    moto.reset()
    ec2 = ec2_client(moto.url)
    # moto ships no Debian images, and the images it registers lack an architecture; the
    # default look-up (owner + name pattern + x86_64, newest) is pointed at one of the
    # Canonical images moto ships instead. Its trusty sibling must not be picked.
    wanted = ec2.describe_images(
        Owners=[UBUNTU_OWNER], Filters=[{"Name": "name", "Values": [UBUNTU_NAME]}]
    )
    image = wanted["Images"][0]["ImageId"]
    own_image = debian_image(ec2)
    user_volume = ec2.create_volume(
        AvailabilityZone="us-east-1b",
        Size=2,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "my-own-data"}]}
        ],
    )["VolumeId"]
    source = ec2.create_volume(AvailabilityZone="us-east-1a", Size=3)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=source, Description="genomes")["SnapshotId"]
    proxy = FleetProxy(moto.url, like_ec2=True).__enter__()
    yield {
        "ec2": ec2,
        "moto": moto,
        "proxy": proxy,
        "home": home,
        "key": ssh_key,
        "image": image,
        "own_image": own_image,
        "user_volume": user_volume,
        "snapshot": snapshot,
        "tmp": tmp_path_factory.mktemp("lifecycle"),
    }
    proxy.__exit__(None, None, None)


def alpha_vars(world: dict, **extra: Any) -> dict[str, Any]:
    return {
        "cluster_name": "alpha",
        "size": "small",
        "admin_cidr": f"{ADMIN},2001:db8::/64",
        "public_key_file": f"{world['key']}.pub",
        "ami_owner": UBUNTU_OWNER,
        "ami_name": UBUNTU_NAME,
        "spot": True,
        "spot_max_price": "0.05",
        "volumes": [
            {"id": world["user_volume"], "mount": "/data"},
            {"snapshot": world["snapshot"], "mount": "/genomes", "size": 4},
            {"size": 2, "mount": "/scratch", "shared": False},
        ],
        "configure": False,
        "summary_file": str(world["tmp"] / "alpha.json"),
        **extra,
    }


def launch(world: dict, variables: dict[str, Any], endpoint: str | None = None) -> Run:
    return run_playbook(
        "launch.yml", variables, endpoint=endpoint or world["proxy"].url, home=world["home"]
    )


def teardown(world: dict, **variables: Any) -> Run:
    return run_playbook("teardown.yml", variables, endpoint=world["moto"].url, home=world["home"])


def template_data(ec2: Any, name: str) -> dict[str, Any]:
    versions = ec2.describe_launch_template_versions(LaunchTemplateName=name, Versions=["$Latest"])
    return versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def template_id(ec2: Any, name: str) -> str:
    found = ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"]
    return found[0]["LaunchTemplateId"]


@pytest.fixture(scope="module")
def clusters(world: dict) -> dict:
    """Launch alpha, and beside it beta (through a proxy with no spot capacity), at the
    same time.

    beta's compute node is asked for on spot; the proxy answers that fleet as EC2 does
    when the spot price is too low: no instance, an error per pool. beta is launched
    first without the on-demand fallback (it must stop and say how to fall back), then
    with it.
    """
    ec2 = world["ec2"]
    ec2.import_key_pair(
        KeyName="users-own-key", PublicKeyMaterial=Path(f"{world['key']}.pub").read_bytes()
    )

    def launch_beta(proxy: FleetProxy) -> dict:
        refused = launch(world, beta_vars(world), endpoint=proxy.url)
        refused_fleets = proxy.fleet_requests()
        refused_roles = [tags(i)["segway:role"] for i in instances_of(ec2, "beta")]
        proxy.clear()
        fallback = launch(world, beta_vars(world, spot_fallback=True), endpoint=proxy.url)
        return {
            "refused": refused,
            "refused_fleets": refused_fleets,
            "refused_roles": refused_roles,
            "fallback": fallback,
            "fallback_fleets": proxy.fleet_requests(),
        }

    world["proxy"].clear()
    with FleetProxy(world["moto"].url, like_ec2=True) as proxy, ThreadPoolExecutor(2) as pool:
        proxy.capacity["spot"] = 0
        proxy.error_code = "SpotMaxPriceTooLow"
        alpha_run = pool.submit(launch, world, alpha_vars(world))
        beta = pool.submit(launch_beta, proxy)
        alpha = {"run": alpha_run.result()}
        beta_result = beta.result()
    assert alpha["run"].returncode == 0, str(alpha["run"])
    alpha["instances"] = instances_of(ec2, "alpha")
    alpha["fleets"] = world["proxy"].fleet_requests()
    return {"alpha": alpha, "beta": beta_result}


@pytest.fixture(scope="module")
def alpha(clusters: dict) -> dict:
    return clusters["alpha"]


@pytest.fixture(scope="module")
def beta(clusters: dict) -> dict:
    return clusters["beta"]


# ---------------------------------------------------------------- launch


def test_launch_small_creates_master_and_two_compute_nodes(world: dict, alpha: dict) -> None:
    ec2, instances = world["ec2"], alpha["instances"]
    assert alpha["run"].changed > 0
    names = node_name_map(instances)
    assert [names[i["InstanceId"]] for i in instances] == ["master", "node001", "node002"]
    assert [tags(i)["segway:role"] for i in instances] == ["master", "compute", "compute"]
    # The compute nodes carry the fleet's tags only; the master records their names.
    assert [tags(i)["Name"] for i in instances] == [
        "alpha-master",
        "alpha-compute",
        "alpha-compute",
    ]
    assert [tags(i).get("segway:node") for i in instances] == ["master", None, None]
    node001, node002 = (i["InstanceId"] for i in instances[1:])
    assert tags(instances[0])["segway:names:1"] == f"{node001}=node001 {node002}=node002"
    assert [i["InstanceType"] for i in instances] == ["m7i.large", "m7i.xlarge", "m7i.xlarge"]
    # The user's volume is in us-east-1b: it decides the zone of the whole cluster.
    assert {i["Placement"]["AvailabilityZone"] for i in instances} == {"us-east-1b"}
    assert {i["ImageId"] for i in instances} == {world["image"]}
    key = ec2.describe_key_pairs(KeyNames=["segway-alpha"])["KeyPairs"][0]
    assert tags(key)["segway:cluster"] == "alpha"
    assert {i["KeyName"] for i in instances} == {"segway-alpha"}


def test_security_group_allows_ssh_from_admin_cidr_and_the_group_only(
    world: dict, alpha: dict
) -> None:
    ec2 = world["ec2"]
    group = ec2.describe_security_groups(GroupNames=["segway-alpha"])["SecurityGroups"][0]
    assert tags(group)["segway:cluster"] == "alpha"
    rules = group["IpPermissions"]
    ssh = [r for r in rules if r["IpProtocol"] == "tcp"]
    assert [(r["FromPort"], r["ToPort"]) for r in ssh] == [(22, 22)]
    assert [c["CidrIp"] for c in ssh[0]["IpRanges"]] == [ADMIN]
    assert [c["CidrIpv6"] for c in ssh[0]["Ipv6Ranges"]] == ["2001:db8::/64"]
    internal = [r for r in rules if r["IpProtocol"] == "-1"]
    assert len(internal) == 1
    assert [p["GroupId"] for p in internal[0]["UserIdGroupPairs"]] == [group["GroupId"]]
    assert internal[0]["IpRanges"] == [] and internal[0]["Ipv6Ranges"] == []
    assert len(rules) == 2
    cidrs = [c["CidrIp"] for r in rules for c in r["IpRanges"]]
    cidrs += [c["CidrIpv6"] for r in rules for c in r["Ipv6Ranges"]]
    assert "0.0.0.0/0" not in cidrs and "::/0" not in cidrs
    for inst in alpha["instances"]:
        assert [g["GroupId"] for g in inst["SecurityGroups"]] == [group["GroupId"]]


def test_launch_templates_require_imdsv2_encrypt_root_and_ask_for_spot(
    world: dict, alpha: dict
) -> None:
    ec2 = world["ec2"]
    # One template per node shape, named after its type; only the shapes launched exist.
    templates = {
        t["LaunchTemplateName"]
        for t in ec2.describe_launch_templates(
            Filters=[{"Name": "tag:segway:cluster", "Values": ["alpha"]}]
        )["LaunchTemplates"]
    }
    master_name, compute_name = "segway-alpha-master-m7i.large", "segway-alpha-compute-m7i.xlarge"
    assert templates == {master_name, compute_name}
    for name in templates:
        data = template_data(ec2, name)
        assert data["MetadataOptions"]["HttpTokens"] == "required", name
        assert data["MetadataOptions"]["HttpEndpoint"] == "enabled", name
        root = data["BlockDeviceMappings"][0]
        assert root["DeviceName"] == "/dev/sda1"  # the image's root device
        assert root["Ebs"]["Encrypted"] is True, name
        assert root["Ebs"]["VolumeSize"] == 30 and root["Ebs"]["VolumeType"] == "gp3"
    # No template asks for a market: EC2 refuses InstanceMarketOptions in a fleet's
    # template. The compute nodes' carries their network (the fleet takes none).
    assert "InstanceMarketOptions" not in template_data(ec2, master_name)
    compute = template_data(ec2, compute_name)
    assert "InstanceMarketOptions" not in compute and "TagSpecifications" not in compute
    assert compute["InstanceType"] == "m7i.xlarge"
    group = ec2.describe_security_groups(GroupNames=["segway-alpha"])["SecurityGroups"][0]
    [interface] = compute["NetworkInterfaces"]
    assert interface["Groups"] == [group["GroupId"]] and "SubnetId" not in interface
    assert interface["AssociatePublicIpAddress"] is True
    # The master from its own template (RunInstances); both compute nodes from one instant
    # fleet over the compute template, on spot at spot_max_price, tagged at creation.
    master_id = template_id(ec2, master_name)
    assert tags(alpha["instances"][0])["aws:ec2launchtemplate:id"] == master_id
    [fleet] = alpha["fleets"]
    assert fleet["template"] == {
        "LaunchTemplateId": template_id(ec2, compute_name),
        "Version": "$Default",
    }
    assert (fleet["type"], fleet["market"], fleet["total"]) == ("instant", "spot", 2)
    assert fleet["spot_strategy"] == "price-capacity-optimized"
    subnet = alpha["instances"][0]["SubnetId"]
    assert fleet["overrides"] == [
        {"InstanceType": "m7i.xlarge", "SubnetId": subnet, "MaxPrice": "0.05"}
    ]
    # The same tags for every node (a node's name is recorded on the master).
    assert fleet["tags"]["instance"] == {
        "segway:cluster": "alpha",
        "segway:owner": OWNER,
        "segway:role": "compute",
        "segway:market": "spot",
        "Name": "alpha-compute",
    }
    assert [tags(i).get("segway:market") for i in alpha["instances"]] == [None, "spot", "spot"]
    # moto launches a fleet's spot instances as spot (through spot requests).
    assert [i.get("InstanceLifecycle") for i in alpha["instances"]] == [None, "spot", "spot"]
    assert {i["MetadataOptions"]["HttpTokens"] for i in alpha["instances"]} == {"required"}


def test_data_volumes_are_attached_to_the_master_in_its_zone(world: dict, alpha: dict) -> None:
    ec2 = world["ec2"]
    master = alpha["instances"][0]
    attached = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [master["InstanceId"]]}]
    )["Volumes"]
    data = {v["Attachments"][0]["Device"]: v for v in attached if tags(v).get("segway:mount")}
    assert sorted(data) == ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi", "/dev/sdj"]
    by_mount = {tags(v)["segway:mount"]: v for v in data.values()}
    home, build, given = by_mount["/home"], by_mount["/segway-build"], by_mount["/data"]
    genomes, scratch = by_mount["/genomes"], by_mount["/scratch"]
    assert home["Attachments"][0]["Device"] == "/dev/sdf"
    assert given["VolumeId"] == world["user_volume"]
    assert tags(given) == {
        "Name": "my-own-data",
        "segway:attached-to": "alpha",
        "segway:mount": "/data",
        "segway:shared": "true",
        "segway:format": "never",
    }
    # /home is the cluster's own volume (kept by teardown), formatted only while blank.
    assert tags(home) == {
        "Name": "alpha-home",
        "segway:cluster": "alpha",
        "segway:owner": OWNER,
        "segway:volume": "home",
        "segway:mount": "/home",
        "segway:shared": "true",
        "segway:format": "if_blank",
    }
    assert home["Size"] == 50
    # So is /segway-build (Segway and GMTK as built): kept, formatted only while blank,
    # not a data volume to share (roles/nfs exports the build path by itself).
    assert tags(build) == {
        "Name": "alpha-segway-build",
        "segway:cluster": "alpha",
        "segway:owner": OWNER,
        "segway:volume": "segway-build",
        "segway:mount": "/segway-build",
        "segway:shared": "false",
        "segway:format": "if_blank",
    }
    assert build["Size"] == 20
    assert genomes["SnapshotId"] == world["snapshot"] and genomes["Size"] == 4
    assert tags(genomes)["segway:mount"] == "/genomes" and tags(genomes)["Name"] == "alpha-genomes"
    assert tags(genomes)["segway:format"] == "never"  # made from a snapshot: never formatted
    assert scratch["Size"] == 2 and tags(scratch)["segway:shared"] == "false"
    assert tags(scratch)["segway:format"] == "if_blank"
    for vol in (home, build, genomes, scratch):
        assert vol["Encrypted"] is True and vol["VolumeType"] == "gp3"
        assert tags(vol)["segway:cluster"] == "alpha"
    assert {v["AvailabilityZone"] for v in data.values()} == {"us-east-1b"}
    assert not any(v["Attachments"][0].get("DeleteOnTermination") for v in data.values())


def test_summary_prices_spot_nodes_at_the_spot_price(world: dict, alpha: dict) -> None:
    summary = json.loads((world["tmp"] / "alpha.json").read_text())
    master = alpha["instances"][0]
    assert summary["master_address"] == master["PublicIpAddress"]
    assert summary["ssh_command"] == (f"ssh -i {world['key']} admin@{master['PublicIpAddress']}")
    assert [n["market"] for n in summary["nodes"]] == ["on-demand", "spot", "spot"]
    # m7i.large on-demand + 2 spot nodes at spot_max_price
    assert summary["cost_per_hour"] == pytest.approx(0.1008 + 2 * 0.05)
    assert summary["configured"] is False
    assert "configure=false: the nodes were NOT configured" in alpha["run"].flat


@pytest.fixture(scope="module")
def reruns(world: dict, alpha: dict) -> dict:
    """Launch alpha again as it was, then with fewer nodes (one after the other: a second
    launch of a cluster while one runs stops, see test_ec2_launch_safety.py).

    Neither may change anything.
    """
    ec2 = world["ec2"]
    before = account_state(ec2)
    smaller = alpha_vars(world, compute_count=1, summary_file="")
    runs = {"same": launch(world, alpha_vars(world)), "fewer": launch(world, smaller)}
    return {**runs, "before": before, "after": account_state(ec2)}


def test_relaunch_changes_nothing(reruns: dict) -> None:
    run = reruns["same"]
    assert run.returncode == 0, str(run)
    assert run.changed == 0, str(run)
    assert reruns["after"] == reruns["before"]


def test_smaller_size_removes_nothing(reruns: dict) -> None:
    run = reruns["fewer"]
    assert run.returncode == 0, str(run)
    assert run.changed == 0, str(run)
    assert reruns["after"] == reruns["before"]
    assert (
        "The cluster has 2 compute nodes, more than the 1 asked for: launch never removes"
        in run.flat
    )


def test_inventory_script_lists_the_cluster(world: dict, alpha: dict) -> None:
    result = run_inventory(
        "--list", "--cluster", "alpha", endpoint=world["moto"].url, home=world["home"]
    )
    assert result.returncode == 0, result.stderr
    inv = json.loads(result.stdout)
    assert inv["master"]["hosts"] == ["master"]
    assert inv["compute"]["hosts"] == ["node001", "node002"]
    assert inv["cluster_alpha"]["hosts"] == ["master", "node001", "node002"]
    hostvars = inv["_meta"]["hostvars"]
    names = node_name_map(alpha["instances"])
    for inst in alpha["instances"]:
        hv = hostvars[names[inst["InstanceId"]]]
        # moto gives a fleet's instances no public address (its run_instances is called
        # without the template's AssociatePublicIpAddress, which EC2 honours): the
        # compute nodes are then reached at their private address through the master.
        if tags(inst)["segway:role"] == "master":
            assert hv["ansible_host"] == inst["PublicIpAddress"]
        else:
            assert hv["ansible_host"] == inst.get("PublicIpAddress", inst["PrivateIpAddress"])
        assert hv["common_private_ip"] == inst["PrivateIpAddress"]
        assert hv["segway_instance_id"] == inst["InstanceId"]
        assert hv["segway_zone"] == "us-east-1b"
        assert hv["ansible_user"] == "admin" and hv["ansible_become"] is True
        assert "StrictHostKeyChecking=accept-new" in hv["ansible_ssh_common_args"]
        # EC2 (and moto, for a fleet's spot instances) marks the compute nodes as spot.
        node = names[inst["InstanceId"]]
        assert hv["segway_lifecycle"] == ("on-demand" if node == "master" else "spot"), node
    assert (hostvars["master"]["segway_vcpus"], hostvars["master"]["segway_memory_mib"]) == (
        2,
        8192,
    )
    assert (hostvars["node001"]["segway_vcpus"], hostvars["node001"]["segway_memory_mib"]) == (
        4,
        16384,
    )
    volumes = hostvars["master"]["segway_volumes"]
    assert [(v["device"], v["mount"], v["shared"]) for v in volumes] == [
        ("/dev/sdf", "/home", True),
        ("/dev/sdg", "/segway-build", False),
        ("/dev/sdh", "/data", True),
        ("/dev/sdi", "/genomes", True),
        ("/dev/sdj", "/scratch", False),
    ]
    # The same volumes as roles/ebs_mount takes them, so configure.yml mounts and shares them.
    mounts = hostvars["master"]["ebs_mount_volumes"]
    assert [(m["volume_id"], m["device"], m["mount_point"], m["share"]) for m in mounts] == [
        (v["volume_id"], v["device"], v["mount"], v["shared"]) for v in volumes
    ]
    assert [m["name"] for m in mounts] == ["home", "segway-build", "data", "genomes", "scratch"]
    # Only a volume launch created empty may be formatted; the files of /home and
    # /segway-build are copied over (onto a blank volume only).
    assert [m["format"] for m in mounts] == ["if_blank", "if_blank", "never", "never", "if_blank"]
    assert [m.get("copy_existing", False) for m in mounts] == [True, True, False, False, False]
    assert "ebs_mount_volumes" not in hostvars["node001"]
    one = run_inventory(
        "--host",
        "node002",
        endpoint=world["moto"].url,
        home=world["home"],
        env={"SEGWAY_CLUSTER": "alpha"},
    )
    assert json.loads(one.stdout) == hostvars["node002"]


def test_growing_to_medium_adds_only_the_missing_nodes(world: dict, alpha: dict) -> None:
    ec2 = world["ec2"]
    before = {i["InstanceId"]: i for i in instances_of(ec2, "alpha")}
    world["proxy"].clear()
    run = launch(world, alpha_vars(world, size="medium"))
    assert run.returncode == 0, str(run)
    # The two new nodes from one fleet over medium's type, named after node002.
    [fleet] = world["proxy"].fleet_requests()
    assert [o["InstanceType"] for o in fleet["overrides"]] == ["r7i.2xlarge"]
    assert fleet["total"] == 2
    after = instances_of(ec2, "alpha")
    assert list(node_name_map(after).values()) == [
        "master",
        "node001",
        "node002",
        "node003",
        "node004",
    ]
    assert set(before) <= {i["InstanceId"] for i in after}
    # Running nodes keep their type; only the new ones get medium's r7i.2xlarge.
    assert [i["InstanceType"] for i in after] == [
        "m7i.large",
        "m7i.xlarge",
        "m7i.xlarge",
        "r7i.2xlarge",
        "r7i.2xlarge",
    ]
    assert all(i["State"]["Name"] == "running" for i in after)


# ---------------------------------------------------------------- a second cluster, spot refused


def beta_vars(world: dict, **extra: Any) -> dict[str, Any]:
    return {
        "cluster_name": "beta",
        "compute_count": 1,
        "admin_cidr": "198.51.100.0/24",
        "key_name": "users-own-key",
        "ami_id": world["own_image"],
        "spot": True,
        "configure": False,
        "summary_file": str(world["tmp"] / "beta.json"),
        **extra,
    }


def test_spot_refusal_stops_and_names_the_fallback(world: dict, beta: dict) -> None:
    run = beta["refused"]
    assert run.returncode != 0
    assert "SpotMaxPriceTooLow" in run.flat
    assert "EC2 refused spot capacity; re-run with -e spot_fallback=true" in run.flat
    # EC2's per-pool error is named: the pool and its message.
    pool = r"m7i\.xlarge in subnet-[0-9a-f]+ \(spot\): SpotMaxPriceTooLow"
    assert re.search(pool, run.flat), str(run)
    assert [f["market"] for f in beta["refused_fleets"]] == ["spot"]
    assert beta["refused_roles"] == ["master"], beta["refused_roles"]  # no compute node


def test_spot_fallback_launches_on_demand(world: dict, beta: dict) -> None:
    ec2 = world["ec2"]
    run = beta["fallback"]
    assert run.returncode == 0, str(run)
    # One spot fleet (no capacity), then the same node asked for on-demand.
    spot, on_demand = beta["fallback_fleets"]
    assert (spot["market"], spot["total"]) == ("spot", 1)
    assert (on_demand["market"], on_demand["total"]) == ("on-demand", 1)
    compute_id = template_id(ec2, "segway-beta-compute-m7i.xlarge")
    assert spot["template"]["LaunchTemplateId"] == on_demand["template"]["LaunchTemplateId"]
    assert on_demand["template"]["LaunchTemplateId"] == compute_id
    assert "EC2 refused spot capacity (SpotMaxPriceTooLow); spot_fallback is on" in run.flat
    nodes = instances_of(ec2, "beta")
    assert list(node_name_map(nodes).values()) == ["master", "node001"]
    assert tags(nodes[1])["segway:market"] == "on-demand"
    summary = json.loads((world["tmp"] / "beta.json").read_text())
    assert [n["market"] for n in summary["nodes"]] == ["on-demand", "on-demand"]
    assert any("EC2 refused spot capacity (SpotMaxPriceTooLow)" in n for n in summary["notes"])
    # beta uses the user's own key pair and imports none.
    assert {i["KeyName"] for i in nodes} == {"users-own-key"}


def test_inventory_script_lists_all_clusters(world: dict, beta: dict) -> None:
    # Without a cluster chosen, two clusters would land in one master/compute group.
    mixed = run_inventory("--list", endpoint=world["moto"].url, home=world["home"])
    assert mixed.returncode == 1
    assert "clusters were found (alpha, beta) and no cluster was chosen" in mixed.stderr
    result = run_inventory(
        "--list", "--cluster", "all", endpoint=world["moto"].url, home=world["home"]
    )
    assert result.returncode == 0, result.stderr
    inv = json.loads(result.stdout)
    assert inv["master"]["hosts"] == [] and inv["compute"]["hosts"] == []
    assert inv["cluster_beta"]["hosts"] == ["beta-master", "beta-node001"]
    assert len(inv["cluster_alpha"]["hosts"]) == 5


def test_removed_nodes_are_terminated_only_when_ec2_tags_agree(world: dict, beta: dict) -> None:
    """remove_nodes.yml's last step (roles/ec2_cluster, terminate_nodes) on NODE=ID pairs as
    the inventory gives them: only a pair EC2 tags the same way, now, is terminated. A stale
    inventory (an id now another node's, another cluster's instance, an id gone) must not
    make it terminate anything else."""
    ec2 = world["ec2"]
    alpha_ids = {name: i["InstanceId"] for name, i in nodes_of(ec2, "alpha").items()}
    beta_node = nodes_of(ec2, "beta")["node001"]
    playbook = world["tmp"] / "terminate.yml"
    pairs = [
        f"node004={alpha_ids['node004']}",  # the one to terminate
        f"node002={alpha_ids['node003']}",  # an id of another node of this cluster
        f"node001={beta_node['InstanceId']}",  # another cluster's node of that name
        "node009=i-0123456789abcdef0",  # gone
    ]
    task = {
        "ansible.builtin.include_role": {
            "name": "segway.cluster.ec2_cluster",
            "tasks_from": "terminate_nodes",
        },
        "vars": {"ec2_cluster_name": "alpha", "ec2_cluster_terminate_nodes": pairs},
    }
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    playbook.write_text(json.dumps(play))
    run = run_playbook(str(playbook), {}, endpoint=world["moto"].url, home=world["home"])
    assert run.returncode == 0, str(run)
    assert "Not terminated" in run.flat and "node001, node002, node009." in run.flat, str(run)
    left = {name: i["InstanceId"] for name, i in nodes_of(ec2, "alpha").items()}
    assert left == {k: v for k, v in alpha_ids.items() if k != "node004"}, left
    assert beta_node["InstanceId"] in {i["InstanceId"] for i in instances_of(ec2, "beta")}
    again = run_playbook(str(playbook), {}, endpoint=world["moto"].url, home=world["home"])
    assert again.returncode == 0 and again.changed == 0, str(again)


# ---------------------------------------------------------------- teardown


def test_teardown_without_confirmation_or_terminal_stops(world: dict, beta: dict) -> None:
    ec2 = world["ec2"]
    before = account_state(ec2)
    run = teardown(world, cluster_name="beta")
    assert run.returncode != 0
    assert "there is no terminal to ask on: re-run with -e confirm=true" in run.flat
    assert "terminate instance" in run.flat  # the plan was shown first
    assert account_state(ec2) == before


def test_teardown_removes_one_cluster_and_keeps_its_data(world: dict, beta: dict) -> None:
    ec2 = world["ec2"]
    beta_before = dict(account_state(ec2))
    beta_instances = [i["InstanceId"] for i in instances_of(ec2, "beta")]
    alpha_ids = {i["InstanceId"] for i in instances_of(ec2, "alpha")}
    alpha_volumes = {
        v["VolumeId"]: v
        for v in ec2.describe_volumes()["Volumes"]
        if tags(v).get("segway:mount")
        and any(a["InstanceId"] in alpha_ids for a in v["Attachments"])
    }
    run = teardown(world, cluster_name="alpha", confirm=True)
    assert run.returncode == 0, str(run)
    assert instances_of(ec2, "alpha") == []
    after = account_state(ec2)
    assert not {n for n in after["launch_templates"] if n.startswith("segway-alpha")}
    assert "segway-alpha" not in after["key_pairs"]
    assert not ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["segway-alpha"]}]
    )["SecurityGroups"]
    # beta is untouched: its instances, templates, group and the user's key pair.
    assert [i["InstanceId"] for i in instances_of(ec2, "beta")] == beta_instances
    assert {n for n in after["launch_templates"] if n.startswith("segway-beta")} == {
        n for n in beta_before["launch_templates"] if n.startswith("segway-beta")
    }
    assert "users-own-key" in after["key_pairs"]
    assert ec2.describe_security_groups(GroupNames=["segway-beta"])["SecurityGroups"]
    # Every data volume survives, detached; the user's volume keeps its own tags.
    kept = {
        v["VolumeId"]: v for v in ec2.describe_volumes(VolumeIds=list(alpha_volumes))["Volumes"]
    }
    # /home, /segway-build, /data, /genomes, /scratch
    assert set(kept) == set(alpha_volumes) and len(kept) == 5
    assert all(v["State"] == "available" for v in kept.values())
    assert tags(kept[world["user_volume"]])["Name"] == "my-own-data"
    assert "Kept volumes:" in run.flat
    assert "segway-build, /segway-build: Segway and GMTK as built" in run.flat
    assert not (world["home"] / ".ssh" / "segway_alpha_known_hosts").exists()


def test_teardown_of_a_gone_cluster_succeeds(world: dict) -> None:
    ec2 = world["ec2"]
    before = account_state(ec2)
    run = teardown(world, cluster_name="alpha")  # nothing to confirm
    assert run.returncode == 0, str(run)
    assert run.changed == 0
    assert "has nothing left to tear down" in run.flat
    assert account_state(ec2) == before
    result = run_inventory(
        "--list", "--cluster", "alpha", endpoint=world["moto"].url, home=world["home"]
    )
    inventory = json.loads(result.stdout)
    assert inventory["master"]["hosts"] == [] and inventory["compute"]["hosts"] == []


def test_delete_volumes_deletes_only_the_volumes_launch_created(world: dict) -> None:
    ec2 = world["ec2"]
    run = teardown(world, cluster_name="alpha", confirm=True, delete_volumes=True)
    assert run.returncode == 0, str(run)
    left = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert world["user_volume"] in left
    assert not ec2.describe_volumes(
        Filters=[
            {"Name": "tag:segway:cluster", "Values": ["alpha"]},
            {"Name": "tag-key", "Values": ["segway:volume"]},
        ]
    )["Volumes"]
