#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ec2_cluster_info: what a cluster is and owns on EC2."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_cluster_info
short_description: Read what a segway.cluster cluster owns on EC2, its hosts and its plans
version_added: 0.1.0
description:
  - The read-only look-ups launch and teardown make before they create or delete
    anything, in one module, over the same code as the dynamic inventory
    C(inventory/ec2_segway.py) (C(plugins/module_utils/ec2_cluster.py)).
  - Only resources tagged C(segway:cluster=<cluster>), and the spot requests and volumes
    of the cluster's own instances, count as the cluster's.
  - Each look-up is made only when asked for; with none asked, nothing is read.
options:
  cluster:
    description:
      - The cluster's name (1-32 lowercase letters, digits and hyphens, starting with a
        letter).
    type: str
    required: true
  owned:
    description:
      - Return RV(owned), everything the cluster owns (instances, spot requests, volumes,
        launch templates and the launch lock, security groups and what else uses them,
        key pairs), with each one's C(segway:owner).
    type: bool
    default: false
  spot_requests:
    description:
      - With O(owned), also read the cluster's open spot requests (RV(owned.spot_request_ids),
        which teardown cancels). V(false) spares one or two C(DescribeSpotInstanceRequests)
        calls where they are not needed (launch); RV(owned.spot_request_ids) is then empty.
        O(teardown) always reads them.
    type: bool
    default: true
  teardown:
    description:
      - Return RV(teardown), what teardown would do with what the cluster owns (implies
        O(owned)).
    type: bool
    default: false
  delete_volumes:
    description: With O(teardown), the volumes launch created are deleted rather than kept.
    type: bool
    default: false
  own_name:
    description:
      - Return RV(name_clashes), the key pairs and security groups called O(own_name) that
        the cluster does not own.
    type: str
  instance_types:
    description:
      - Return RV(offerings) (per availability zone, which of these types it offers) and
        RV(offering_zones) (the zones offering all of them).
    type: list
    elements: str
    default: []
  volumes:
    description:
      - The planned volumes (the C(volumes) of the C(segway.cluster.ec2_volume_plan)
        filter). Return RV(volume_check), what stands in the way of them (implies O(owned)).
    type: list
    elements: dict
    default: []
  inventory:
    description:
      - Return RV(inventory) (the cluster's running hosts as the dynamic inventory's
        C(--list --cluster <cluster>) gives them) and RV(hosts) (each host with its groups
        and host variables, as M(ansible.builtin.add_host) takes them).
    type: bool
    default: false
  ssh_user:
    description: With O(inventory), the user Ansible logs in as.
    type: str
    default: admin
  ssh_private_key_file:
    description:
      - With O(inventory), the private key Ansible logs in with (empty for the SSH agent's).
    type: str
    default: ""
  ssh_address:
    description:
      - How the hosts of O(inventory) are reached. V(public) reaches the master (and any
        node with a public address) at that address and the other nodes through the
        master; V(private) reaches every node at its private address, for a controller
        inside the VPC (a bastion, a VPN, SSM).
    type: str
    choices: [public, private]
    default: public
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: all
    details: Runs wherever boto3 reaches the EC2 API (usually the controller).
notes:
  - Warnings about instances the inventory skips (no node name yet, two of one name) are
    returned as the module's warnings.
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read what cluster segway owns and what teardown would do with it
  segway.cluster.ec2_cluster_info:
    cluster: segway
    teardown: true
    region: us-east-1
  register: found

- name: Read the cluster's running hosts
  segway.cluster.ec2_cluster_info:
    cluster: segway
    inventory: true
    ssh_private_key_file: ~/.ssh/id_ed25519
  register: listing

- name: Put them into the in-memory inventory, every host variable with them
  ansible.builtin.add_host: "{{ {'name': item.name, 'groups': item.groups} | combine(item.vars) }}"
  loop: "{{ listing.hosts }}"
  loop_control:
    label: "{{ item.name }}"
  changed_when: false

- name: Check the planned volumes and where the instance types are offered
  segway.cluster.ec2_cluster_info:
    cluster: segway
    own_name: segway-segway
    instance_types: [m7i.large, m7i.xlarge]
    volumes: "{{ ([] | segway.cluster.ec2_volume_plan('segway', 50)).volumes }}"
"""

RETURN = r"""
owned:
  description: What the cluster owns (with O(owned), O(teardown) or O(volumes)).
  returned: when asked for
  type: dict
  contains:
    instances:
      description:
        - Its instances that are not terminated, master first, each with id, node, role,
          type, state, zone, subnet, owner and block devices.
        - A compute node's node is the name the master records for it (its tags
          C(segway:names:N)), else its own C(segway:node) tag; empty when it has none.
      type: list
      elements: dict
    spot_request_ids:
      description: Its open spot requests.
      type: list
      elements: str
    cluster_volumes:
      description: The volumes launch created for it.
      type: list
      elements: dict
    data_volumes:
      description: The volumes attached to its instances that outlive them.
      type: list
      elements: dict
    launch_templates:
      description: Its launch templates.
      type: list
      elements: dict
    lock:
      description: The launch lock template (empty when none).
      type: dict
    security_groups:
      description:
        - Its security groups, each with C(id), C(name), C(vpc_id), C(tags), C(owner), its
          inbound rules (C(ip_permissions), as EC2 gives them) and the C(users) that hold it.
      type: list
      elements: dict
    key_pairs:
      description: The key pairs launch imported for it.
      type: list
      elements: str
    resources:
      description: "All of the above as {kind, id, name, owner}."
      type: list
      elements: dict
    owners:
      description: The distinct C(segway:owner) tags.
      type: list
      elements: str
    placement_groups_used:
      description: Placement groups its instances and templates use.
      type: list
      elements: str
teardown:
  description: What teardown would do (with O(teardown)).
  returned: when asked for
  type: dict
  contains:
    plan:
      description: One line per action.
      type: list
      elements: str
    empty:
      description: Whether there is nothing to change (kept things do not count).
      type: bool
    instances:
      description: The instances to terminate.
      type: list
      elements: dict
    spot_request_ids:
      description: The spot requests to cancel.
      type: list
      elements: str
    data_volumes:
      description: The volumes to detach.
      type: list
      elements: dict
    delete_volume_ids:
      description: The volumes to delete.
      type: list
      elements: str
    kept_volumes:
      description: The volumes kept, each with its label.
      type: list
      elements: dict
    launch_templates:
      description: The launch templates to delete.
      type: list
      elements: str
    security_groups:
      description: The security groups to delete.
      type: list
      elements: dict
    kept_security_groups:
      description: The security groups something else still uses.
      type: list
      elements: dict
    group_notes:
      description: Why each kept group is kept and how to finish.
      type: list
      elements: str
    key_pairs:
      description: The key pairs to delete.
      type: list
      elements: str
name_clashes:
  description: Key pairs and security groups called O(own_name) that are not the cluster's.
  returned: when O(own_name) is given
  type: list
  elements: dict
  sample: [{kind: security group, id: sg-0123456789abcdef0, vpc_id: vpc-01234567}]
offerings:
  description: Per availability zone, which of O(instance_types) it offers.
  returned: when O(instance_types) is given
  type: dict
  sample: {us-east-1a: [m7i.large, m7i.xlarge]}
offering_zones:
  description: The zones that offer every one of O(instance_types).
  returned: when O(instance_types) is given
  type: list
  elements: str
volume_check:
  description: What stands in the way of the planned volumes; each list is empty when nothing does.
  returned: when O(volumes) is given
  type: dict
  contains:
    found:
      description: The volumes the cluster will use that exist (given by id, or its own).
      type: list
      elements: dict
    clashing:
      description:
        - Volumes not the cluster's that carry the name launch would give a new one
          (C(vol-... is named <name>)).
      type: list
      elements: str
    foreign:
      description: Volumes given by id that another cluster owns.
      type: list
      elements: str
    foreign_owners:
      description: The clusters owning them.
      type: list
      elements: str
    missing:
      description: Volume ids given that do not exist.
      type: list
      elements: str
    busy:
      description:
        - Volumes attached to an instance that is not the cluster's master
          (C(vol-... is attached to i-...)).
      type: list
      elements: str
    snapshot_problems:
      description: Snapshots that do not exist or are bigger than their volume.
      type: list
      elements: str
    zones:
      description: The zones of the volumes found.
      type: list
      elements: str
    placed:
      description: Each volume found with its zone (C(vol-... in <zone>)).
      type: list
      elements: str
inventory:
  description:
    - The cluster's running hosts as the dynamic inventory lists them (its groups, and
      C(_meta.hostvars)).
  returned: when O(inventory) is true
  type: dict
hosts:
  description: Each running host with its groups and host variables.
  returned: when O(inventory) is true
  type: list
  elements: dict
  contains:
    name:
      description: The host's name (its node name).
      type: str
      sample: master
    groups:
      description: Its groups.
      type: list
      elements: str
      sample: [cluster_segway, master]
    vars:
      description: Its host variables (ansible_host, segway_instance_id, ...).
      type: dict
"""

import contextlib  # noqa: E402
import logging  # noqa: E402
from typing import Any  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils import ec2_cluster  # noqa: E402


class WarningsToModule(logging.Handler):
    """The module_utils' warnings (an instance skipped by the listing) as module warnings."""

    def __init__(self, module: AnsibleAWSModule) -> None:
        super().__init__(logging.WARNING)
        self.module = module

    def emit(self, record: logging.LogRecord) -> None:
        self.module.warn(record.getMessage())


def look_up(module: AnsibleAWSModule, ec2: Any) -> dict[str, Any]:
    """Every look-up the parameters ask for, read-only."""
    params = module.params
    cluster = params["cluster"]
    plan = params["volumes"]
    result: dict[str, Any] = {}
    owned = bool(params["owned"] or params["teardown"] or plan)
    # Both look-ups read key pairs: one DescribeKeyPairs (the region's) serves both.
    key_pairs = ec2_cluster.fetch_key_pairs(ec2) if owned and params["own_name"] else None
    if owned:
        result["owned"] = ec2_cluster.fetch_owned(
            ec2,
            cluster,
            key_pairs,
            spot_requests=bool(params["spot_requests"] or params["teardown"]),
        )
    if params["teardown"]:
        result["teardown"] = ec2_cluster.teardown_plan(result["owned"], params["delete_volumes"])
    if params["own_name"]:
        result["name_clashes"] = ec2_cluster.fetch_name_clashes(
            ec2, cluster, params["own_name"], key_pairs
        )
    types = sorted({t.strip() for t in params["instance_types"] if t.strip()})
    if types:
        result["offerings"] = ec2_cluster.fetch_offerings(ec2, types)
        result["offering_zones"] = ec2_cluster.offering_zones(result["offerings"], types)
    if plan:
        given_ids = [v["id"] for v in plan if not v.get("create")]
        masters = [i for i in result["owned"]["instances"] if i["role"] == "master"]
        result["volume_check"] = ec2_cluster.check_volumes(
            plan,
            cluster=cluster,
            region=module.region or "",
            given=(
                ec2_cluster.fetch_volumes(ec2, [{"Name": "volume-id", "Values": given_ids}])
                if given_ids
                else []
            ),
            owned_volumes=result["owned"]["cluster_volumes"],
            name_clashes=ec2_cluster.fetch_volume_name_clashes(
                ec2, cluster, sorted({v["tag_name"] for v in plan if v.get("create")})
            ),
            snapshots=ec2_cluster.fetch_snapshots(
                ec2, sorted({v["snapshot"] for v in plan if "snapshot" in v})
            ),
            master_id=masters[0]["id"] if masters else "",
        )
    if params["inventory"]:
        access = ec2_cluster.HostAccess(
            cluster=cluster,
            ssh_user=params["ssh_user"],
            ssh_private_key_file=params["ssh_private_key_file"] or None,
            ssh_address=params["ssh_address"],
        )
        result["inventory"] = ec2_cluster.collect_inventory(ec2, access)
        result["hosts"] = ec2_cluster.inventory_hosts(result["inventory"])
    return result


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "owned": {"type": "bool", "default": False},
            "spot_requests": {"type": "bool", "default": True},
            "teardown": {"type": "bool", "default": False},
            "delete_volumes": {"type": "bool", "default": False},
            "own_name": {"type": "str"},
            "instance_types": {"type": "list", "elements": "str", "default": []},
            "volumes": {"type": "list", "elements": "dict", "default": []},
            "inventory": {"type": "bool", "default": False},
            "ssh_user": {"type": "str", "default": ec2_cluster.DEFAULT_SSH_USER},
            "ssh_private_key_file": {"type": "str", "default": "", "no_log": False},
            "ssh_address": {
                "type": "str",
                "default": "public",
                "choices": list(ec2_cluster.SSH_ADDRESSES),
            },
        },
        supports_check_mode=True,
    )
    cluster = module.params["cluster"]
    if not ec2_cluster.CLUSTER_RE.match(cluster):
        module.fail_json(
            msg=f"cluster '{cluster}' is not allowed: use a cluster name (1-32 lowercase "
            "letters, digits and hyphens, starting with a letter; 'all' and wildcards are not "
            "names)."
        )
    handler = WarningsToModule(module)
    ec2_cluster.LOG.addHandler(handler)
    ec2_cluster.LOG.propagate = False  # not to stderr as well
    try:
        found = look_up(module, module.client("ec2"))
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg=f"cannot read cluster {cluster} on EC2")
    except ec2_cluster.Ec2ClusterError as exc:
        module.fail_json(msg=str(exc))
    finally:
        ec2_cluster.LOG.removeHandler(handler)
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
