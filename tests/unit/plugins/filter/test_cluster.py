"""Unit tests of plugins/filter/cluster.py and plugins/module_utils/cluster.py: the size
resolution, the local cluster's node list, volumes, summary and teardown plan, and the
lines the playbooks print."""

from __future__ import annotations

import json

import pytest
from ansible_collections.segway.cluster.plugins.filter.cluster import (
    FilterModule,
    docker_labels,
    instance_owners,
    key_values,
    launch_summary_lines,
    local_containers,
    local_ebs_volumes,
    local_grow_count,
    local_launch_summary,
    local_nodes_wanted,
    local_teardown_plan,
    status_lines,
    teardown_report,
)
from ansible_collections.segway.cluster.plugins.module_utils.cluster import (
    local_node_list,
    local_volume_plan,
    resolve_size,
)

SIZES = {
    "small": {
        "description": "two nodes",
        "master_type": "m7i.large",
        "compute_type": "m7i.xlarge",
        "compute_count": 2,
    },
    "medium": {"extends": "small", "compute_type": "r7i.2xlarge", "compute_count": 4},
    "large": {"extends": "medium", "master_type": "m7i.xlarge", "compute_count": 8},
}
NO_OVERRIDES = {"master_type": "", "compute_type": "", "compute_count": ""}


# ------------------------------------------------------------------ sizes


def test_size_follows_its_extends_chain():
    size = resolve_size(SIZES, "large", {}, NO_OVERRIDES)
    assert size["error"] == ""
    assert size["chain"] == ["large", "medium", "small"]
    assert (size["master_type"], size["compute_type"], size["compute_count"]) == (
        "m7i.xlarge",
        "r7i.2xlarge",
        8,
    )
    assert size["name"] == "large"


def test_overrides_win_and_empty_ones_are_ignored():
    size = resolve_size(SIZES, "medium", {}, {**NO_OVERRIDES, "compute_count": 0})
    assert size["error"] == ""
    assert size["compute_count"] == 0  # 0 is given, not empty
    assert size["master_type"] == "m7i.large"
    size = resolve_size(SIZES, "small", {}, {"master_type": "c7i.large", "compute_type": ""})
    assert (size["master_type"], size["compute_type"]) == ("c7i.large", "m7i.xlarge")


def test_custom_sizes_extend_and_replace_the_shipped_ones():
    custom = {"huge": {"extends": "large", "compute_count": 32}, "small": {"compute_count": 1}}
    size = resolve_size(SIZES, "huge", custom, NO_OVERRIDES)
    assert size["error"] == ""
    assert size["chain"] == ["huge", "large", "medium", "small"]
    assert size["compute_count"] == 32
    # The custom small replaces the shipped one entirely: no instance types left.
    assert "master_type" not in resolve_size(SIZES, "small", custom, NO_OVERRIDES)


@pytest.mark.parametrize(
    ("name", "custom", "overrides", "error"),
    [
        (
            "huge",
            {},
            NO_OVERRIDES,
            "size 'huge' is not allowed: use one of large, medium, small"
            " (playbooks/vars/sizes.yml, or your own in custom_sizes)",
        ),
        (
            ["small"],
            {},
            NO_OVERRIDES,
            "size '['small']' is not allowed: use one of large, medium, small"
            " (playbooks/vars/sizes.yml, or your own in custom_sizes)",
        ),
        (
            "a",
            {"a": {"extends": "b"}, "b": {"extends": "a"}},
            NO_OVERRIDES,
            "size 'a' extends itself: a -> b -> a",
        ),
        ("a", {"a": {"extends": "a"}}, NO_OVERRIDES, "size 'a' extends itself: a -> a"),
        (
            "a",
            {"a": {"extends": "nowhere"}},
            NO_OVERRIDES,
            "size 'a' extends 'nowhere', which is not a size (one of a, large, medium, small)",
        ),
        (
            "a",
            {"a": {"extends": "b"}, "b": "big"},
            NO_OVERRIDES,
            "size 'b' must be a mapping of extends, description, master_type, compute_type,"
            " compute_count",
        ),
        (
            "a",
            {"a": {"extends": "small", "colour": "red", "cpus": 4}},
            NO_OVERRIDES,
            "size 'a' has unknown key(s) colour, cpus: a size may set extends, description,"
            " master_type, compute_type, compute_count",
        ),
        (
            "small",
            {},
            {**NO_OVERRIDES, "compute_count": "-1"},
            "compute_count '-1' (size 'small') must be a whole number from 0 to 1000",
        ),
        (
            "small",
            {},
            {**NO_OVERRIDES, "compute_count": 1001},
            "compute_count '1001' (size 'small') must be a whole number from 0 to 1000",
        ),
        (
            "small",
            {},
            {**NO_OVERRIDES, "compute_count": True},
            "compute_count 'True' (size 'small') must be a whole number from 0 to 1000",
        ),
        (
            "bare",
            {"bare": {"master_type": "m7i.large"}},
            NO_OVERRIDES,
            "compute_count '' (size 'bare') must be a whole number from 0 to 1000",
        ),
        (
            "small",
            ["not", "a", "mapping"],
            NO_OVERRIDES,
            "custom_sizes must be a mapping of size names to sizes, got ['not', 'a', 'mapping']",
        ),
    ],
)
def test_bad_sizes_are_named_with_what_is_allowed(name, custom, overrides, error):
    assert resolve_size(SIZES, name, custom, overrides)["error"] == error


def test_size_names_sort_as_jinja_sorts_them():
    """Jinja's sort ignores case: the list of allowed sizes does too."""
    error = resolve_size({"b": {}, "A": {}, "c": {}}, "x")["error"]
    assert error.startswith("size 'x' is not allowed: use one of A, b, c ")


# ------------------------------------------------------------------ local nodes


def test_local_node_list_keeps_every_existing_compute_node():
    assert local_node_list(2) == [
        {"name": "master", "groups": ["master"]},
        {"name": "node001", "groups": ["compute"]},
        {"name": "node002", "groups": ["compute"]},
    ]
    names = [n["name"] for n in local_node_list("1", ["node001", "node005"])]
    assert names == ["master", "node001", "node005"]
    assert [n["name"] for n in local_node_list(0)] == ["master"]


def test_local_nodes_wanted_fills_the_gaps_below_the_count():
    found = [
        {"name": "master", "role": "master"},
        {"name": "node001", "role": "compute"},
        {"name": "node003", "role": "compute"},
    ]
    names = [n["name"] for n in local_nodes_wanted(found, 3)]
    assert names == ["master", "node001", "node002", "node003"]


@pytest.mark.parametrize(
    ("existing", "extra", "count", "added"),
    [
        ([], 2, 2, ["node001", "node002"]),
        (["node001", "node002"], 0, 0, []),
        (["node001", "node002"], 1, 3, ["node003"]),
        # Gaps left by removed nodes are filled first, and nothing else is added.
        (["node001", "node004"], 1, 2, ["node002"]),
        (["node001", "node004"], 2, 3, ["node002", "node003"]),
        (["node001", "node004"], 3, 5, ["node002", "node003", "node005"]),
        (["node003"], 1, 1, ["node001"]),
    ],
)
def test_local_grow_count_adds_exactly_the_nodes_asked_for(existing, extra, count, added):
    found = [{"name": "master", "role": "master"}] + [
        {"name": n, "role": "compute"} for n in existing
    ]
    assert local_grow_count(found, extra) == count
    names = [n["name"] for n in local_nodes_wanted(found, count)]
    assert sorted(set(names) - {"master", *existing}) == added


def inspected(name, role=None, node=None, ip="10.0.0.2", network="c-net"):
    labels = {"segway.cluster": "c"}
    if role:
        labels["segway.role"] = role
    if node:
        labels["segway.node"] = node
    return {
        "Name": f"/{name}",
        "Id": "0123456789abcdef0123",
        "State": {"Status": "running"},
        "Config": {"Labels": labels, "Image": "segway-node:bookworm"},
        "NetworkSettings": {"Networks": {network: {"IPAddress": ip}}},
    }


def test_local_containers_master_first_then_by_name():
    found = local_containers(
        [
            inspected("c-node002", "compute", "node002"),
            inspected("c-master", "master", "master", ip="10.0.0.9"),
            inspected("c-node001", "compute", "node001", network="elsewhere"),
        ],
        "c-net",
    )
    assert [n["name"] for n in found] == ["master", "node001", "node002"]
    assert found[0] == {
        "name": "master",
        "role": "master",
        "container": "c-master",
        "id": "0123456789ab",
        "state": "running",
        "ip": "10.0.0.9",
        "image": "segway-node:bookworm",
    }
    assert found[1]["ip"] == ""  # not on the cluster's network


def test_local_containers_without_labels_are_compute_nodes_named_by_container():
    bare = inspected("stray")
    bare["Config"]["Labels"] = None
    bare["NetworkSettings"]["Networks"] = None
    (found,) = local_containers([bare], "c-net")
    assert (found["name"], found["role"], found["ip"]) == ("stray", "compute", "")


# ------------------------------------------------------------------ local volumes

PATH = "/var/lib/segway-cluster/c/volumes"


def test_local_volume_plan_names_and_places_each_image():
    plan = local_volume_plan(
        [{"size": 4, "mount": "/data"}, {"size": "2", "mount": "/My_Scratch", "shared": "no"}],
        PATH,
    )
    assert plan["problems"] == []
    assert plan["names_ok"] is True
    assert plan["volumes"] == [
        {"name": "data", "mount": "/data", "size": 4, "shared": True, "image": f"{PATH}/data.img"},
        {
            "name": "my-scratch",
            "mount": "/My_Scratch",
            "size": 2,
            "shared": False,
            "image": f"{PATH}/my-scratch.img",
        },
    ]


def test_local_volume_names_must_differ():
    plan = local_volume_plan([{"size": 1, "mount": "/a/x"}, {"size": 1, "mount": "/b/x"}], PATH)
    assert plan["problems"] == []
    assert plan["names_ok"] is False
    assert [v["name"] for v in plan["volumes"]] == ["x", "x"]


@pytest.mark.parametrize(
    ("volumes", "problems"),
    [
        ("/data", ["must be a list, got /data"]),
        ({"size": 1}, ["must be a list, got {'size': 1}"]),
        (["/data"], ['volumes[0] "/data": is not a mapping']),
        (
            [{"id": "vol-0123456789abcdef0", "mount": "/data"}],
            [
                'volumes[0] {"id": "vol-0123456789abcdef0", "mount": "/data"}: id is EC2-only'
                " (an EBS volume id, snapshot or type); provider=local makes an image file of"
                " the given size",
                'volumes[0] {"id": "vol-0123456789abcdef0", "mount": "/data"}: size \'\' must be'
                " whole GiB from 1 to 65536",
            ],
        ),
        (
            [{"size": 0, "mount": "/data", "colour": "red"}],
            [
                'volumes[0] {"size": 0, "mount": "/data", "colour": "red"}: unknown key(s) colour',
                'volumes[0] {"size": 0, "mount": "/data", "colour": "red"}: size \'0\' must be'
                " whole GiB from 1 to 65536",
            ],
        ),
        (
            [{"size": 1, "mount": "/home"}],
            [
                'volumes[0] {"size": 1, "mount": "/home"}: mount \'/home\' must be an absolute'
                " path outside the system's own directories and the shared /home and"
                " /segway-build"
            ],
        ),
        (
            [{"size": 1, "mount": "/run/x", "shared": "maybe", "name": "Bad"}],
            [
                'volumes[0] {"size": 1, "mount": "/run/x", "shared": "maybe", "name": "Bad"}:'
                " shared 'maybe' must be true or false",
                'volumes[0] {"size": 1, "mount": "/run/x", "shared": "maybe", "name": "Bad"}:'
                " mount '/run/x' must be an absolute path outside the system's own directories"
                " and the shared /home and /segway-build",
                'volumes[0] {"size": 1, "mount": "/run/x", "shared": "maybe", "name": "Bad"}:'
                " name 'Bad' must be 1-32 lowercase letters, digits and hyphens",
            ],
        ),
        (
            [{"size": 1, "mount": "/d"}, {"size": 1, "mount": "/d", "name": "e"}],
            ["two volumes share a mount point: /d, /d"],
        ),
        (
            [{"size": True, "mount": "/d"}],
            [
                'volumes[0] {"size": true, "mount": "/d"}: size \'True\' must be whole GiB'
                " from 1 to 65536"
            ],
        ),
    ],
)
def test_bad_local_volumes_are_named_with_what_is_allowed(volumes, problems):
    plan = local_volume_plan(volumes, PATH)
    assert plan["problems"] == problems
    assert plan["volumes"] == []


def test_local_ebs_volumes_put_each_volume_on_its_loop_device():
    volumes = local_volume_plan([{"size": 4, "mount": "/data", "shared": False}], PATH)["volumes"]
    assert local_ebs_volumes(volumes, {f"{PATH}/data.img": "/dev/loop7"}, "ext4", "sgeadmin") == [
        {
            "name": "data",
            "device": "/dev/loop7",
            "mount_point": "/data",
            "fstype": "ext4",
            "owner": "sgeadmin",
            "group": "sgeadmin",
            "mode": "0755",
            "share": False,
        }
    ]
    with pytest.raises(KeyError):
        local_ebs_volumes(volumes, {}, "ext4", "sgeadmin")


# ------------------------------------------------------------------ summaries

FOUND = [
    {"name": "master", "role": "master", "container": "c-master", "ip": "10.0.0.2", "id": "aa"},
    {"name": "node001", "role": "compute", "container": "c-node001", "ip": "10.0.0.3", "id": "bb"},
    {"name": "node002", "role": "compute", "container": "c-node002", "ip": "10.0.0.4", "id": "cc"},
]


def local_summary(**changes):
    args = {
        "cluster": "c",
        "host": "box",
        "user": "sgeadmin",
        "data_volumes": [],
        "devices": {},
        "compute_count": 2,
    }
    return local_launch_summary(FOUND, **{**args, **changes})


def test_local_launch_summary():
    s = local_summary()
    assert s["zone"] == "containers on box"
    assert s["master_address"] == "c-master"
    assert s["ssh_command"] == "docker exec -it c-master su - sgeadmin"
    assert s["nodes"][1] == {
        "name": "node001",
        "role": "compute",
        "address": "c-node001",
        "private_ip": "10.0.0.3",
        "type": "container",
        "market": "local",
        "instance_id": "bb",
        "price_per_hour": 0.0,
    }
    assert s["notes"] == [
        "The nodes share /home and /segway-build through docker volumes c-home and"
        " c-segway-build (kept by teardown unless delete_volumes=true)."
    ]


def test_local_launch_summary_notes_volumes_and_extra_nodes():
    volumes = local_volume_plan([{"size": 4, "mount": "/data"}], "/v")["volumes"]
    s = local_summary(data_volumes=volumes, devices={"/v/data.img": "/dev/loop3"}, compute_count=1)
    assert s["notes"] == [
        "Volume data: /data on the master, image file /v/data.img (4 GiB, sparse) on /dev/loop3;"
        " teardown keeps it unless delete_volumes=true.",
        "The nodes share /home and /segway-build through docker volumes c-home and"
        " c-segway-build (kept by teardown unless delete_volumes=true); every compute node"
        " mounts the data volumes at the same paths, from the same loop devices.",
        "The cluster has 2 compute nodes, more than the 1 asked for: launch never removes nodes.",
    ]


def summary(provider="local", **changes):
    s = {
        "cluster": "c",
        "provider": provider,
        "zone": "containers on box",
        "master_address": "c-master",
        "ssh_command": "docker exec -it c-master su - sgeadmin",
        "nodes": [
            {
                "name": "master",
                "role": "master",
                "address": "c-master",
                "private_ip": "10.0.0.2",
                "type": "container",
                "market": "local",
                "instance_id": "aa",
            },
            {
                "name": "node001",
                "role": "compute",
                "address": "c-node001",
                "private_ip": "10.0.0.3",
                "type": "container",
                "market": "local",
                "instance_id": "bb",
            },
        ],
        "cost_per_hour": 0.0,
        "price_note": "containers on this machine cost nothing",
        "notes": ["a note"],
    }
    return {**s, **changes}


def test_launch_summary_lines_of_a_configured_cluster():
    lines = launch_summary_lines(summary(), True)
    assert lines[:3] == [
        "Cluster c (local, containers on box): master + 1 compute nodes",
        "Master: c-master   log in: docker exec -it c-master su - sgeadmin",
        "  master  c-master  private 10.0.0.2  container  local  aa",
    ]
    assert lines[4:6] == [
        "Estimated cost: $0.0000 per hour (containers on this machine cost nothing)",
        "a note",
    ]
    assert lines[6].startswith("Submit a job: log in as above, then  qsub")
    assert lines[-1] == (
        "Tear down:  ansible-playbook playbooks/teardown.yml -e provider=local -e cluster_name=c"
        "  (data volumes are kept)"
    )


def test_launch_summary_lines_without_configure():
    local = launch_summary_lines(summary(), False)
    assert local[-1] == (
        "configure=false: the nodes were NOT configured. Configure them with:"
        " ansible-playbook playbooks/launch.yml -e provider=local -e cluster_name=c"
    )
    ec2 = launch_summary_lines(summary("ec2", region="eu-west-1", cost_per_hour=0.30246), False)
    assert "Estimated cost: $0.3025 per hour (containers on this machine cost nothing)" in ec2
    assert ec2[-1] == (
        "configure=false: the nodes were NOT configured. Configure them with: SEGWAY_CLUSTER=c"
        " ansible-playbook -i inventory/ec2_segway.py playbooks/configure.yml"
    )
    configured = launch_summary_lines(summary("ec2", region="eu-west-1"), True)
    assert configured[-2] == (
        "Nodes, mem_requested and jobs:  ansible-playbook playbooks/status.yml -e provider=ec2"
        " -e cluster_name=c -e region=eu-west-1"
    )


MASTER = {
    "status_jobs": {"stdout_lines": ["running 1", "pending 3", "error 2"]},
    "status_qhost": {"stdout_lines": ["HOSTNAME ARCH", "node001 lx-amd64"]},
    "status_queues": {"stdout_lines": ["CLUSTER QUEUE", "all.q"]},
}


def test_status_lines_with_grid_engine():
    lines = status_lines(summary(), "master", MASTER)
    assert lines[0] == "Cluster c (local): 2 nodes"
    assert lines[1] == "  master  master  c-master  private 10.0.0.2  container  local  aa  running"
    assert "Estimated cost" not in " ".join(lines)  # local: nothing to pay
    assert lines[3:] == [
        "Jobs: 1 running, 3 pending (2 in error state, see qstat -j JOB)"
        " (an array job counts once)",
        "qhost -F mem_requested:",
        "  HOSTNAME ARCH",
        "  node001 lx-amd64",
        "qstat -g c:",
        "  CLUSTER QUEUE",
        "  all.q",
    ]


def test_status_lines_show_the_autoscalers_last_passes():
    record = {"time": "2026-12-06T20:00:00Z", "summary": "2026-12-06T20:00:00Z pending 1 jobs"}
    log = [json.dumps(record), '{"time": "2026-12-06T20:01', json.dumps({**record, "summary": "b"})]
    lines = status_lines(summary(), "master", {**MASTER, "status_autoscale": {"stdout_lines": log}})
    assert lines[-3:] == [
        "Autoscaler, last 2 pass(es) (playbooks/balance.yml):",
        "  2026-12-06T20:00:00Z pending 1 jobs",
        "  b",
    ]  # the line cut short while written is skipped
    never = {**MASTER, "status_autoscale": {"stdout_lines": []}}
    assert status_lines(summary(), "master", never) == status_lines(summary(), "master", MASTER)
    assert not any("Autoscaler" in line for line in status_lines(summary(), "master", never))


def test_status_lines_without_grid_engine():
    ec2 = summary("ec2", nodes=[])
    assert status_lines(ec2, "", {}) == [
        "Cluster c (ec2): no nodes found",
        "Estimated cost: $0.0000 per hour (containers on this machine cost nothing)",
        "a note",
        "Grid Engine not shown: the cluster has no running master.",
    ]
    lines = status_lines(summary(), "master", {"status_sge_error": "Grid Engine not shown: x"})
    assert lines[-1] == "Grid Engine not shown: x"
    quiet = {**MASTER, "status_jobs": {"stdout_lines": ["running 0", "pending 0", "error 0"]}}
    assert "Jobs: 0 running, 0 pending (an array job counts once)" in status_lines(
        summary(), "master", quiet
    )


def test_teardown_report():
    assert teardown_report("c", True) == "Cluster c has nothing left to tear down."
    report = teardown_report(
        "c",
        False,
        ["sg-1 is held by i-2."],
        [{"id": "vol-1", "label": "c-home (/home)"}, {"id": "vol-2", "label": "data"}],
        [],
    )
    assert report == (
        "Cluster c is torn down. NOT deleted: sg-1 is held by i-2. Kept volumes: vol-1"
        " c-home (/home), vol-2 data (delete_volumes=true deletes the ones launch created)."
    )
    assert teardown_report("c", False, kept_local=["/v/data.img", "c-home"]) == (
        "Cluster c is torn down. Kept: /v/data.img, c-home (delete them with"
        " -e delete_volumes=true)."
    )


def test_local_teardown_plan():
    teardown = {
        "containers": [{"container": "c-master", "name": "master", "state": "running"}],
        "networks": ["c-net"],
        "loops": [{"name": "/dev/loop3", "back-file": "/v/data.img"}],
        "images": ["/v/data.img", "/v/old.img"],
        "delete_images": ["/v/old.img"],
        "docker_volumes": ["c-home"],
        "delete_docker_volumes": [],
    }
    assert local_teardown_plan(teardown) == {
        "plan": [
            "remove container c-master (master, running)",
            "remove network c-net",
            "detach loop device /dev/loop3 (/v/data.img)",
            "keep volume image /v/data.img",
            "DELETE volume image /v/old.img and its data (delete_volumes=true)",
            "keep docker volume c-home",
        ],
        "empty": False,
    }
    kept_only = {
        **{key: [] for key in teardown},
        "images": ["/v/data.img"],
        "docker_volumes": ["c-home"],
    }
    assert local_teardown_plan(kept_only)["empty"] is True  # keeping volumes is no change


# ------------------------------------------------------------------ small helpers


def test_key_values_splits_at_the_first_separator():
    lines = ["host: node001", "no separator", "memory limit (ulimit -v): 1048576 KiB", "a: b: c"]
    assert key_values(lines) == {
        "host": "node001",
        "memory limit (ulimit -v)": "1048576 KiB",
        "a": "b: c",
    }
    assert key_values([]) == {}


def test_instance_owners():
    hosts = [
        {"segway_instance_id": "i-1", "segway_node": "master", "segway_owner": "arn:a"},
        {"segway_instance_id": "i-2", "segway_node": "node001", "segway_owner": "arn:b"},
    ]
    assert instance_owners(hosts) == [
        {"kind": "instance", "id": "i-1", "name": "master", "owner": "arn:a"},
        {"kind": "instance", "id": "i-2", "name": "node001", "owner": "arn:b"},
    ]
    with pytest.raises(KeyError):
        instance_owners([{"segway_instance_id": "i-3"}])


def test_docker_labels():
    objects = [{"Labels": {"segway.path": "/home"}}, {"Labels": None}, {"Labels": {"x": "y"}}]
    assert docker_labels(objects, "segway.path") == ["/home", "", ""]


def test_every_filter_is_registered():
    names = set(FilterModule().filters())
    assert {
        "cluster_size",
        "launch_summary_lines",
        "status_lines",
        "teardown_report",
        "key_values",
        "instance_owners",
        "local_containers",
        "local_node_list",
        "local_grow_count",
        "local_volume_plan",
        "local_ebs_volumes",
        "local_launch_summary",
        "local_teardown_plan",
        "docker_labels",
    } == names
