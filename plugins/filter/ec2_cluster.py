# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of roles/ec2_cluster and playbooks/tasks/cluster_nodes.yml over what
segway.cluster.ec2_cluster_info returns: segway.cluster.ec2_cluster_summary (and
local_cluster_summary, its provider=local twin), ec2_cluster_node_names,
ec2_cluster_names_update, ec2_cluster_node_map, ec2_cluster_free_names,
ec2_cluster_pool_error, ec2_cluster_subnet, ec2_cluster_name_clashes,
ec2_cluster_owner_check, ec2_cluster_with_placement_groups, ec2_cluster_autoscale_policy
and ec2_cluster_with_autoscale_roles.
The logic lives in plugins/module_utils/ec2_cluster.py and cluster_summary.py (unit-tested
there); these names only hand Jinja's values to it."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.segway.cluster.plugins.module_utils.cluster_summary import (
    cluster_summary,
    local_cluster_summary,
)
from ansible_collections.segway.cluster.plugins.module_utils.ec2_cluster import (
    Ec2ClusterError,
    autoscale_policy,
    choose_subnet,
    free_node_names,
    name_clash_labels,
    new_node_names,
    node_names,
    node_names_update,
    owner_check,
    pool_error_text,
    with_autoscale_roles,
    with_placement_groups,
)

DOCUMENTATION = r"""
---
name: ec2_cluster_summary
short_description: The summary of an EC2 cluster's hosts, with an hourly cost estimate
version_added: 0.1.0
description:
  - Returns C(cluster), C(provider), C(region), C(zone), C(master_address), C(ssh_command),
    C(nodes) (each with name, role, address, private_ip, type, market, instance_id and
    price_per_hour), C(cost_per_hour), C(price_note) and C(notes).
  - A spot node costs O(spot_max_price) when it is set, else its type's on-demand price
    (and a note says so); a type missing from O(prices) is left out of the estimate, with
    a note.
options:
  _input:
    description:
      - The hosts' variables (C(inventory._meta.hostvars) of segway.cluster.ec2_cluster_info).
    type: dict
    required: true
  cluster:
    description: The cluster's name.
    type: str
    required: true
  region:
    description: Its region.
    type: str
    required: true
  ssh_user:
    description: The user of the login command.
    type: str
    required: true
  prices:
    description: Hourly on-demand price in USD by instance type.
    type: dict
    required: true
  prices_note:
    description: Where the prices come from.
    type: str
    default: ""
  zone:
    description: Its zone (default, the zones its hosts run in).
    type: str
  private_key:
    description: The private key of the login command (none when empty).
    type: str
    default: ""
  spot_max_price:
    description: The maximum spot price asked for (empty when none).
    type: raw
    default: ""
  spot_refused:
    description: The EC2 error code when spot capacity was refused in this run.
    type: str
    default: ""
  existing_compute:
    description: How many compute nodes ran before this launch.
    type: int
    default: 0
  compute_count:
    description: How many compute nodes were asked for.
    type: raw
    default: 0
"""


def names_update(instances, template_ids):
    """node_names_update, its refusal as a filter error (one line, no traceback)."""
    try:
        return node_names_update(instances, template_ids)
    except Ec2ClusterError as err:
        raise AnsibleFilterError(str(err)) from err


class FilterModule:
    def filters(self):
        return {
            "ec2_cluster_summary": cluster_summary,
            "local_cluster_summary": local_cluster_summary,
            "ec2_cluster_node_names": new_node_names,
            "ec2_cluster_names_update": names_update,
            "ec2_cluster_node_map": node_names,
            "ec2_cluster_free_names": free_node_names,
            "ec2_cluster_pool_error": pool_error_text,
            "ec2_cluster_subnet": choose_subnet,
            "ec2_cluster_name_clashes": name_clash_labels,
            "ec2_cluster_owner_check": owner_check,
            "ec2_cluster_with_placement_groups": with_placement_groups,
            "ec2_cluster_autoscale_policy": autoscale_policy,
            "ec2_cluster_with_autoscale_roles": with_autoscale_roles,
        }
