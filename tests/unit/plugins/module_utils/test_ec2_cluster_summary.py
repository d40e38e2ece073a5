"""Unit tests of plugins/module_utils/cluster_summary.py: the summary launch.yml and
status.yml print, with the hourly cost estimate (once roles/ec2_cluster's summary.j2)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.segway.cluster.plugins.module_utils.cluster_summary import (
    cluster_summary,
    local_cluster_summary,
)

PRICES = {"m7i.large": 0.1008, "m7i.xlarge": "0.2016"}


def host(node: str, itype: str, lifecycle: str = "on-demand", market: str = "on-demand") -> dict:
    n = len(node)
    return {
        "ansible_host": f"198.51.100.{n}",
        "segway_private_ip": f"10.0.0.{n}",
        "segway_role": "master" if node == "master" else "compute",
        "segway_instance_type": itype,
        "segway_instance_id": f"i-{node}",
        "segway_lifecycle": lifecycle,
        "segway_market": market,
        "segway_zone": "us-east-1b",
    }


def summary(hostvars: dict[str, Any], **extra: Any) -> dict[str, Any]:
    args = {"cluster": "c1", "region": " us-east-1 ", "ssh_user": "admin", "prices": PRICES}
    return cluster_summary(hostvars, **(args | extra))


def test_on_demand_cluster_is_priced_from_the_table() -> None:
    hostvars = {"node001": host("node001", "m7i.xlarge"), "master": host("master", "m7i.large")}
    result = summary(hostvars, zone="us-east-1b", private_key="/k/id", prices_note="2025 prices")
    assert result == {
        "cluster": "c1",
        "provider": "ec2",
        "region": "us-east-1",
        "zone": "us-east-1b",
        "master_address": "198.51.100.6",
        "ssh_command": "ssh -i /k/id admin@198.51.100.6",
        "nodes": [
            {
                "name": "master",
                "role": "master",
                "address": "198.51.100.6",
                "private_ip": "10.0.0.6",
                "type": "m7i.large",
                "market": "on-demand",
                "instance_id": "i-master",
                "price_per_hour": 0.1008,
            },
            {
                "name": "node001",
                "role": "compute",
                "address": "198.51.100.7",
                "private_ip": "10.0.0.7",
                "type": "m7i.xlarge",
                "market": "on-demand",
                "instance_id": "i-node001",
                "price_per_hour": 0.2016,
            },
        ],
        "cost_per_hour": 0.3024,
        "price_note": "2025 prices",
        "notes": [],
    }


def test_spot_nodes_cost_spot_max_price_when_set() -> None:
    hostvars = {
        "master": host("master", "m7i.large"),
        "node001": host("node001", "m7i.xlarge", market="spot"),
        "node002": host("node002", "m7i.xlarge", lifecycle="spot"),
    }
    result = summary(hostvars, spot_max_price="0.05")
    assert [n["market"] for n in result["nodes"]] == ["on-demand", "spot", "spot"]
    assert result["cost_per_hour"] == pytest.approx(0.1008 + 2 * 0.05)
    assert result["notes"] == []
    bound = summary(hostvars)
    assert bound["cost_per_hour"] == pytest.approx(0.1008 + 2 * 0.2016)
    assert bound["notes"] == [
        "Spot nodes are counted at the on-demand price, the most spot can cost without "
        "spot_max_price."
    ]


def test_notes_say_what_the_estimate_and_the_launch_left_out() -> None:
    hostvars = {
        "master": host("master", "x9.huge"),
        "node001": host("node001", "x9.huge"),
        "node002": host("node002", "m7i.xlarge"),
    }
    result = summary(
        hostvars, spot_refused="SpotMaxPriceTooLow", existing_compute=3, compute_count="2"
    )
    assert result["nodes"][0]["price_per_hour"] is None
    assert result["cost_per_hour"] == pytest.approx(0.2016)
    assert result["notes"] == [
        "EC2 refused spot capacity (SpotMaxPriceTooLow): the new compute nodes run on-demand.",
        "The cluster has 3 compute nodes, more than the 2 asked for: launch never removes nodes.",
        "No price for x9.huge in playbooks/vars/prices.yml: left out of the estimate.",
    ]
    assert summary(hostvars, existing_compute=2, compute_count=2)["notes"][:1] == [
        "No price for x9.huge in playbooks/vars/prices.yml: left out of the estimate."
    ]


def test_without_a_zone_the_hosts_zones_are_named_and_no_master_no_address() -> None:
    east = host("node001", "m7i.xlarge")
    west = host("node002", "m7i.xlarge") | {"segway_zone": "us-west-2a"}
    result = summary({"node001": east, "node002": west, "node003": east})
    assert result["zone"] == "us-east-1b, us-west-2a"
    assert (result["master_address"], result["ssh_command"]) == ("", "ssh admin@")
    empty = summary({})
    assert (empty["nodes"], empty["cost_per_hour"], empty["zone"]) == ([], 0.0, "")


def test_local_cluster_summary_lists_the_containers_at_no_cost() -> None:
    found = [
        {
            "name": "master",
            "role": "master",
            "container": "c1-master",
            "ip": "172.30.0.2",
            "id": "abc",
            "state": "running",
        },
    ]
    result = local_cluster_summary(found, "c1")
    assert result == {
        "cluster": "c1",
        "provider": "local",
        "nodes": [
            {
                "name": "master",
                "role": "master",
                "address": "c1-master",
                "private_ip": "172.30.0.2",
                "type": "container",
                "market": "local",
                "instance_id": "abc",
                "state": "running",
                "price_per_hour": 0.0,
            }
        ],
        "cost_per_hour": 0.0,
        "price_note": "containers on this machine cost nothing",
        "notes": [],
    }
    with pytest.raises(KeyError):
        local_cluster_summary([{"name": "master"}], "c1")
