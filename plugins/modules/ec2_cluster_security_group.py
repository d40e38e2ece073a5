#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ec2_cluster_security_group: a cluster's security group."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_cluster_security_group
short_description: Create or keep a cluster's EC2 security group in few calls
version_added: 0.1.0
description:
  - Makes the security group O(name) of O(vpc_id) allow, inbound, SSH (TCP port 22) from
    each CIDR of O(ssh_cidrs) (IPv4 or IPv6) and all traffic from the group's own members,
    and nothing else. Outbound rules are left as they are (EC2 opens them on a new group).
  - The group is looked up once (C(DescribeSecurityGroups) by name in the VPC), or taken
    as the caller read it (O(existing)). A missing
    group is created with its tags (C(CreateSecurityGroup) with C(TagSpecifications)) and
    given its rules with one C(AuthorizeSecurityGroupIngress).
  - A group of that name that is not tagged C(segway:cluster=)O(cluster) is never taken
    over; the module fails, naming it, and changes nothing.
  - An existing group of the cluster gets only the rules it lacks (one authorize call),
    loses the inbound rules it should not have (one revoke call) and gets the tags of
    O(tags) it lacks or holds with another value; no tag is removed.
options:
  cluster:
    description: The cluster's name (tag C(segway:cluster)).
    type: str
    required: true
  name:
    description: The group's name.
    type: str
    required: true
  description:
    description: The group's description, when it is created.
    type: str
    required: true
  vpc_id:
    description: The VPC of the group.
    type: str
    required: true
  ssh_cidrs:
    description: The IPv4 and IPv6 CIDRs SSH is allowed from.
    type: list
    elements: str
    required: true
  ssh_description:
    description: Description of the SSH rules.
    type: str
    default: SSH from admin_cidr
  internal_description:
    description: Description of the rule allowing all traffic within the group.
    type: str
    default: all traffic between the cluster nodes
  tags:
    description: Tags of the group (C(segway:cluster) is always among them).
    type: dict
    default: {}
  existing:
    description:
      - The cluster's group of this name in O(vpc_id) as the caller read it just before by
        the tag C(segway:cluster=)O(cluster) (C(id), C(tags) and C(ip_permissions), as in
        the C(owned.security_groups) of M(segway.cluster.ec2_cluster_info)), or an empty
        dict when it found none. Given, the group is not read again; a group of the name
        that EC2 holds already is still refused.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Looks the group up and reports what it would create, allow, revoke and tag.
  diff_mode:
    support: full
    details: Shows the group's inbound rules and tags before and after.
  platform:
    platforms: all
    details: It only calls the EC2 API, usually from the controller (C(localhost)).
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Allow SSH from one address and all traffic between the cluster's nodes
  segway.cluster.ec2_cluster_security_group:
    cluster: mycluster
    name: segway-mycluster
    description: "segway.cluster mycluster: SSH from admin_cidr, all traffic within the group"
    vpc_id: vpc-0123456789abcdef0
    ssh_cidrs: [203.0.113.7/32]
    tags:
      "segway:cluster": mycluster
"""

RETURN = r"""
group_id:
  description: The group's id (empty in check mode when it would be created).
  returned: always
  type: str
created:
  description: Whether the group was created.
  returned: always
  type: bool
authorized:
  description: The inbound rules added, one line each.
  returned: always
  type: list
  elements: str
revoked:
  description: The inbound rules removed, one line each.
  returned: always
  type: list
  elements: str
tagged:
  description: The tags set on an existing group.
  returned: always
  type: dict
"""

import contextlib  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.ec2_groups import (  # noqa: E402
    GroupError,
    ensure_group,
)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            "description": {"type": "str", "required": True},
            "vpc_id": {"type": "str", "required": True},
            "ssh_cidrs": {"type": "list", "elements": "str", "required": True},
            "ssh_description": {"type": "str", "default": "SSH from admin_cidr"},
            "internal_description": {
                "type": "str",
                "default": "all traffic between the cluster nodes",
            },
            "tags": {"type": "dict", "default": {}},
            "existing": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = ensure_group(
            module.client("ec2"),
            cluster=params["cluster"],
            name=params["name"],
            description=params["description"],
            vpc_id=params["vpc_id"],
            ssh_cidrs=params["ssh_cidrs"],
            tags=params["tags"],
            descriptions={
                "ssh": params["ssh_description"],
                "group": params["internal_description"],
            },
            check_mode=module.check_mode,
            known=params["existing"],
        )
    except GroupError as exc:
        module.fail_json(msg=str(exc))
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg=f"cannot create or update security group {params['name']}")
    if not result["changed"]:
        del result["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
