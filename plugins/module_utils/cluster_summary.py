# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The summary of a running cluster that launch.yml and status.yml print: its nodes, how
to log in and, on EC2, an hourly cost estimate from the price table
(playbooks/vars/prices.yml). The filters segway.cluster.ec2_cluster_summary and
segway.cluster.local_cluster_summary (plugins/filter/ec2_cluster.py) hand Jinja's values
to these functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.segway.cluster.plugins.module_utils.ec2_cluster import whole


def price_nodes(
    hostvars: Mapping[str, Mapping[str, Any]], prices: Mapping[str, Any], spot_max_price: Any
) -> tuple[list[dict[str, Any]], float, list[str], bool]:
    """Each host as the summary lists it, with its hourly price: spot_max_price for a spot
    node when it is set, else the on-demand price of its type, None when the table has
    none. Also the total, the types without a price and whether a spot node was counted
    at the on-demand price."""
    nodes = []
    total = 0.0
    unknown: list[str] = []
    spot_bound = False
    for name, hv in sorted(hostvars.items(), key=lambda item: item[0].lower()):
        is_spot = hv.get("segway_lifecycle") == "spot" or hv.get("segway_market") == "spot"
        itype = hv.get("segway_instance_type")
        on_demand = prices.get(itype)
        price: float | None = None
        if is_spot and str(spot_max_price):
            price = float(spot_max_price)
        elif on_demand is not None:
            price = float(on_demand)
            spot_bound = spot_bound or is_spot
        elif itype not in unknown:
            unknown.append(itype)
        total += price or 0.0
        nodes.append(
            {
                "name": name,
                "role": hv.get("segway_role"),
                "address": hv.get("ansible_host"),
                "private_ip": hv.get("segway_private_ip"),
                "type": itype,
                "market": "spot" if is_spot else "on-demand",
                "instance_id": hv.get("segway_instance_id"),
                "price_per_hour": price,
            }
        )
    return nodes, total, unknown, spot_bound


def cluster_summary(
    hostvars: Mapping[str, Mapping[str, Any]],
    *,
    cluster: str,
    region: str,
    ssh_user: str,
    prices: Mapping[str, Any],
    prices_note: str = "",
    zone: str | None = None,
    private_key: str = "",
    spot_max_price: Any = "",
    spot_refused: str = "",
    existing_compute: int = 0,
    compute_count: Any = 0,
) -> dict[str, Any]:
    """The end-of-launch (and status) summary of a cluster's hosts (build_inventory's
    hostvars): where the master is, how to log in, the nodes and an hourly cost estimate
    from the price table (instance type -> USD per hour; see price_nodes).

    zone None: the zones the hosts run in. spot_refused: the EC2 error code when spot
    capacity was refused this run. existing_compute: how many compute nodes ran before
    this launch, compute_count how many were asked for."""
    nodes, total, unknown, spot_bound = price_nodes(hostvars, prices, spot_max_price)
    notes = []
    if spot_refused:
        notes.append(
            f"EC2 refused spot capacity ({spot_refused}): the new compute nodes run on-demand."
        )
    if existing_compute > whole(compute_count):
        notes.append(
            f"The cluster has {existing_compute} compute nodes, more than the {compute_count} "
            "asked for: launch never removes nodes."
        )
    if spot_bound:
        notes.append(
            "Spot nodes are counted at the on-demand price, the most spot can cost without "
            "spot_max_price."
        )
    if unknown:
        notes.append(
            f"No price for {', '.join(str(t) for t in unknown)} in playbooks/vars/prices.yml: "
            "left out of the estimate."
        )
    if zone is None:
        zones = list(dict.fromkeys(hv.get("segway_zone") for hv in hostvars.values()))
        zone = ", ".join(str(z) for z in zones)
    master_address = hostvars.get("master", {}).get("ansible_host") or ""
    key = f" -i {private_key}" if private_key else ""
    return {
        "cluster": cluster,
        "provider": "ec2",
        "region": region.strip(),
        "zone": zone,
        "master_address": master_address,
        "ssh_command": f"ssh{key} {ssh_user}@{master_address}",
        "nodes": nodes,
        "cost_per_hour": round(total, 4),
        "price_note": prices_note,
        "notes": notes,
    }


def local_cluster_summary(containers: Sequence[Mapping[str, Any]], cluster: str) -> dict[str, Any]:
    """The summary of a provider=local cluster from its containers (roles/local_cluster's
    local_cluster_found: name, role, container, ip, id, state): containers cost nothing."""
    return {
        "cluster": cluster,
        "provider": "local",
        "nodes": [
            {
                "name": c["name"],
                "role": c["role"],
                "address": c["container"],
                "private_ip": c["ip"],
                "type": "container",
                "market": "local",
                "instance_id": c["id"],
                "state": c["state"],
                "price_per_hour": 0.0,
            }
            for c in containers
        ],
        "cost_per_hour": 0.0,
        "price_note": "containers on this machine cost nothing",
        "notes": [],
    }
