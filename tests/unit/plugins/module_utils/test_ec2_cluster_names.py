"""Unit tests of plugins/module_utils/ec2_cluster.py: compute nodes' names recorded on the
cluster's master (segway:names:N tags of i-<id>=nodeNNN pairs, issue 17), read back by
every listing, with a node's own segway:node tag as the fallback of older clusters."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.segway.cluster.plugins.filter.ec2_cluster import FilterModule
from ansible_collections.segway.cluster.plugins.module_utils.ec2_cluster import (
    MAX_EC2_COMPUTE_COUNT,
    NAMES_TAGS_MAX,
    TAG_VALUE_MAX,
    Ec2ClusterError,
    HostAccess,
    build_inventory,
    decode_node_names,
    encode_node_names,
    new_node_names,
    node_names,
    node_names_update,
    plain_instance,
)

ROLE_VARS = Path(__file__).parents[4] / "roles" / "ec2_cluster" / "vars" / "main.yml"
# The tags launch gives a master besides its names: Name, segway:cluster, segway:owner,
# segway:role, segway:node (roles/ec2_cluster/tasks/instances.yml).
MASTER_OWN_TAGS = 5
EC2_TAGS_PER_RESOURCE = 50


def iid(n: int) -> str:
    """An instance id of today's form: i- and 17 hex digits."""
    return f"i-{n:017x}"


def ec2_instance(instance_id: str, role: str, cluster: str = "c1", **tags: str) -> dict[str, Any]:
    """An instance as DescribeInstances returns it."""
    every = {"segway:cluster": cluster, "segway:role": role, **tags}
    return {
        "InstanceId": instance_id,
        "InstanceType": "m7i.large",
        "PrivateIpAddress": "10.0.0.1",
        "LaunchTime": "2025-01-01T00:00:00Z",
        "Tags": [{"Key": k, "Value": v} for k, v in every.items()],
    }


def info_instance(instance_id: str, role: str, launch_time: str = "2025-01-01", **tags: str):
    """An instance as amazon.aws.ec2_instance_info returns it."""
    return {
        "instance_id": instance_id,
        "launch_time": launch_time,
        "ami_launch_index": 0,
        "tags": {"segway:cluster": "c1", "segway:role": role, **tags},
    }


def test_pairs_are_packed_nine_to_a_tag_in_node_order() -> None:
    names = {iid(n): f"node{n:03d}" for n in range(20, 0, -1)}
    tags = encode_node_names(names)
    assert list(tags) == ["segway:names:1", "segway:names:2", "segway:names:3"]
    assert [len(v.split()) for v in tags.values()] == [9, 9, 2]
    assert all(len(v) <= TAG_VALUE_MAX for v in tags.values())
    assert tags["segway:names:1"].split()[:2] == [f"{iid(1)}=node001", f"{iid(2)}=node002"]
    assert tags["segway:names:3"] == f"{iid(19)}=node019 {iid(20)}=node020"
    assert decode_node_names(tags) == names
    assert encode_node_names({}) == {}


def test_short_ids_and_long_names_are_packed_by_their_length() -> None:
    # Old 8-digit ids pack more pairs to a tag; node1000 sorts after node999.
    names = {"i-0000abcd": "node1000", "i-0000abce": "node999", "i-0000abcf": "node010"}
    tags = encode_node_names(names)
    assert tags == {"segway:names:1": "i-0000abcf=node010 i-0000abce=node999 i-0000abcd=node1000"}
    assert len(encode_node_names({f"i-{n:08x}": f"node{n:03d}" for n in range(1, 14)})) == 1


def test_the_limit_is_what_fits_on_the_master() -> None:
    assert MAX_EC2_COMPUTE_COUNT == 360
    assert NAMES_TAGS_MAX + MASTER_OWN_TAGS <= EC2_TAGS_PER_RESOURCE
    most = {iid(n): f"node{n:03d}" for n in range(1, MAX_EC2_COMPUTE_COUNT + 1)}
    tags = encode_node_names(most)
    assert len(tags) == NAMES_TAGS_MAX
    assert decode_node_names(tags) == most
    with pytest.raises(Ec2ClusterError, match="more than the 40 it may hold"):
        encode_node_names({**most, iid(999): "node361"})
    # The role refuses a compute_count above the same number before creating anything.
    role_vars = yaml.safe_load(ROLE_VARS.read_text())
    assert role_vars["ec2_cluster_max_compute_count"] == MAX_EC2_COMPUTE_COUNT


@pytest.mark.parametrize(
    "names", [{"i-1": "node001"}, {iid(1): "master"}, {iid(1): "node 1"}, {iid(1): "node01"}]
)
def test_a_malformed_pair_is_refused(names: dict[str, str]) -> None:
    with pytest.raises(Ec2ClusterError, match="cannot record the node name"):
        encode_node_names(names)


def test_decoding_orders_keys_by_number_and_skips_what_is_no_pair(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tags = {
        "segway:names:10": f"{iid(10)}=node010",
        "segway:names:2": f"{iid(2)}=node002 junk {iid(3)}=master  {iid(2)}=node099",
        "segway:names:x": f"{iid(4)}=node004",
        "segway:names:0": f"{iid(5)}=node005",
        "segway:node": "master",
        "Name": "c1-master",
    }
    with caplog.at_level(logging.WARNING, logger="segway.ec2_cluster"):
        names = decode_node_names(tags)
    assert list(names.items()) == [(iid(2), "node002"), (iid(10), "node010")]
    assert "'junk' is not i-<id>=nodeNNN" in caplog.text
    assert f"'{iid(3)}=master'" in caplog.text


def test_names_come_from_the_master_else_from_the_node_itself() -> None:
    master = ec2_instance(
        iid(100), "master", **{"segway:node": "master", "segway:names:1": f"{iid(1)}=node001"}
    )
    recorded = ec2_instance(iid(1), "compute")
    # An older version's node, named by its own tag, and one the map renames.
    old = ec2_instance(iid(2), "compute", **{"segway:node": "node002"})
    both = ec2_instance(iid(3), "compute", **{"segway:node": "node007"})
    master["Tags"][-1]["Value"] += f" {iid(3)}=node003"
    unnamed = ec2_instance(iid(4), "compute")
    other = ec2_instance(iid(5), "compute", cluster="c2")
    names = node_names([recorded, old, both, unnamed, other, master])
    assert names == {iid(100): "master", iid(1): "node001", iid(2): "node002", iid(3): "node003"}
    # Without its master, a node has only its own tag.
    assert node_names([recorded, old]) == {iid(2): "node002"}
    # Each cluster reads its own master: c2's node is not named by c1's map.
    c2_master = ec2_instance(
        iid(200), "master", "c2", **{"segway:node": "master", "segway:names:1": f"{iid(1)}=node009"}
    )
    assert iid(1) not in node_names([recorded, c2_master])
    # The shapes of ec2_instance_info and plain_instance read the same.
    recorded_on = {"segway:node": "master", "segway:names:1": f"{iid(1)}=node001"}
    info = [info_instance(iid(1), "compute"), info_instance(iid(100), "master", **recorded_on)]
    assert node_names(info) == {iid(1): "node001", iid(100): "master"}
    plain = [plain_instance(i) for i in (recorded, master)]
    assert node_names(plain) == {iid(1): "node001", iid(100): "master"}


def test_new_names_skip_the_names_the_master_records() -> None:
    master = info_instance(
        "i-m",
        "master",
        **{"segway:node": "master", "segway:names:1": f"{iid(1)}=node001 {iid(9)}=node002"},
    )
    nodes = [
        info_instance(iid(1), "compute"),
        info_instance(iid(3), "compute", "2025-01-03", **{"segway:node": "node003"}),
        info_instance(iid(4), "compute", "2025-01-02"),
        info_instance(iid(5), "compute", "2025-01-01"),
    ]
    # iid(9) is gone: node002 is free again. The master itself is never given a name.
    assert new_node_names([master, *nodes], {}) == [
        {"id": iid(5), "name": "node002", "market": "on-demand"},
        {"id": iid(4), "name": "node004", "market": "on-demand"},
    ]


def test_the_update_rewrites_live_names_and_drops_gone_ones() -> None:
    old_map = {
        "segway:names:1": " ".join(f"{iid(n)}=node{n:03d}" for n in range(1, 10)),
        "segway:names:2": f"{iid(10)}=node010",
    }
    master = info_instance("i-m", "master", **{"segway:node": "master", **old_map})
    # Nodes 2 to 10 are gone; node011 was named by an older version; two are new.
    nodes = [
        info_instance(iid(1), "compute"),
        info_instance(iid(11), "compute", **{"segway:node": "node011"}),
        info_instance(iid(12), "compute", "2025-01-02"),
        info_instance(iid(13), "compute", "2025-01-03"),
    ]
    update = node_names_update([master, *nodes], {})
    assert update["master_id"] == "i-m"
    assert [n["name"] for n in update["new"]] == ["node002", "node003"]
    assert update["tags"] == {
        "segway:names:1": f"{iid(1)}=node001 {iid(12)}=node002 {iid(13)}=node003 {iid(11)}=node011"
    }
    assert update["stale"] == {"segway:names:2": f"{iid(10)}=node010"}
    # Nothing new: the master is left as it is.
    master_now = info_instance("i-m", "master", **{"segway:node": "master", **update["tags"]})
    assert node_names_update([master_now, *nodes], {}) == {
        "new": [],
        "master_id": "",
        "tags": {},
        "stale": {},
    }


def test_the_update_needs_a_master_and_room_on_it() -> None:
    with pytest.raises(Ec2ClusterError, match="no master to record the names of 1 new"):
        node_names_update([info_instance(iid(1), "compute")], {})
    master = info_instance("i-m", "master", **{"segway:node": "master"})
    many = [info_instance(iid(n), "compute") for n in range(1, MAX_EC2_COMPUTE_COUNT + 2)]
    with pytest.raises(Ec2ClusterError, match="361 compute nodes need 41 tags"):
        node_names_update([master, *many], {})
    # Through the filter: a filter error of one line.
    update = FilterModule().filters()["ec2_cluster_names_update"]
    with pytest.raises(AnsibleFilterError, match="361 compute nodes"):
        update([master, *many], {})
    assert len(update([master, *many[:MAX_EC2_COMPUTE_COUNT]], {})["tags"]) == NAMES_TAGS_MAX


def test_the_inventory_names_compute_nodes_from_their_master() -> None:
    names = f"{iid(1)}=node001 {iid(2)}=node002"
    master = ec2_instance(
        iid(100),
        "master",
        **{"segway:node": "master", "segway:names:1": names, "Name": "c1-master"},
    )
    nodes = [ec2_instance(iid(n), "compute", Name="c1-compute") for n in (2, 1)]
    old = ec2_instance(iid(3), "compute", **{"segway:node": "node003"})
    inventory = build_inventory([*nodes, old, master], {}, {}, HostAccess(cluster="c1"))
    assert inventory["compute"]["hosts"] == ["node001", "node002", "node003"]
    hostvars = inventory["_meta"]["hostvars"]
    assert hostvars["node002"]["segway_instance_id"] == iid(2)
    assert hostvars["node001"]["segway_node"] == "node001"
    every = build_inventory([*nodes, master], {}, {}, HostAccess(all_clusters=True))
    assert every["cluster_c1"]["hosts"] == ["c1-master", "c1-node001", "c1-node002"]


def test_plain_instance_takes_the_name_it_is_given() -> None:
    node = ec2_instance(iid(1), "compute", **{"segway:node": "node004"})
    assert plain_instance(node)["node"] == "node004"
    assert plain_instance(node, "node001")["node"] == "node001"
    assert plain_instance(node, "")["node"] == ""
