#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ec2_cluster_instance: one instance of a cluster (its master)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_cluster_instance
short_description: Launch one instance of a cluster from its launch template, unless it exists
version_added: 0.1.0
description:
  - Makes one instance tagged with O(match_tags) exist (a cluster's master), launching it
    from O(launch_template) only when no instance with those tags is C(pending),
    C(running), C(stopping) or C(stopped). It never stops, starts or terminates anything,
    and an existing instance is returned as it is.
  - The new instance gets everything at creation, in one C(RunInstances) call - O(tags) on
    the instance and its volumes, a network interface in O(subnet_id) with
    O(security_groups) and, with O(public_ip), a public address, IMDSv2 required (session
    tokens), and O(iam_instance_profile).
  - "Three calls in all: one C(DescribeInstances) for the match, C(RunInstances), and
    C(DescribeInstances) until the instance runs (one when it runs at once)."
options:
  launch_template:
    description: The launch template the instance is launched from.
    type: dict
    required: true
    suboptions:
      id:
        description: The template's id. Give O(launch_template.id) or O(launch_template.name).
        type: str
      name:
        description: The template's name.
        type: str
      version:
        description: The template version, a number, V($Default) or V($Latest).
        type: str
        default: $Default
  subnet_id:
    description: The subnet of the instance's network interface.
    type: str
    required: true
  security_groups:
    description: Security group ids of the instance's network interface.
    type: list
    elements: str
    required: true
  public_ip:
    description: Whether the instance gets a public IPv4 address.
    type: bool
    default: true
  match_tags:
    description:
      - The tags that identify the instance (for example C(segway:cluster) and
        C(segway:role)). Must not be empty, and must be part of O(tags) with the same
        values, so the instance launched here is found on the next run.
    type: dict
    required: true
  tags:
    description: Tags the new instance and its volumes get at creation.
    type: dict
    required: true
  iam_instance_profile:
    description: Instance profile (name or ARN) of the new instance; none when empty.
    type: str
    default: ""
  wait:
    description: Wait until the new instance runs.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for it.
    type: int
    default: 600
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Looks for the instance and reports the launch it would make, launching nothing.
  diff_mode:
    support: full
    details: Shows the launch request when an instance would be launched.
  platform:
    platforms: all
    details: It only calls the EC2 API, usually from the controller (C(localhost)).
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Launch the master, unless it exists
  segway.cluster.ec2_cluster_instance:
    launch_template:
      name: segway-mycluster-master-m7i.large
    subnet_id: subnet-0123456789abcdef0
    security_groups: [sg-0123456789abcdef0]
    match_tags:
      "segway:cluster": mycluster
      "segway:role": master
    tags:
      Name: mycluster-master
      "segway:cluster": mycluster
      "segway:role": master
      "segway:node": master
"""

RETURN = r"""
instance_ids:
  description: The instance's id (empty in check mode when it would be launched).
  returned: always
  type: list
  elements: str
instance:
  description: The instance, new or found.
  returned: always
  type: dict
  contains:
    instance_id: {description: Its id., type: str}
    state: {description: Its state., type: str}
    instance_type: {description: Its type., type: str}
    zone: {description: Its availability zone., type: str}
    subnet_id: {description: Its subnet., type: str}
    private_ip_address: {description: Its private address., type: str}
    public_ip_address: {description: Its public address (empty when none)., type: str}
    launch_time: {description: When it was launched., type: str}
    tags: {description: Its tags., type: dict}
    metadata_http_tokens: {description: V(required) when IMDSv2 is required., type: str}
"""

import contextlib  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.ec2_launch import (  # noqa: E402
    LaunchError,
    ensure_instance,
)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "launch_template": {
                "type": "dict",
                "required": True,
                "options": {
                    "id": {"type": "str"},
                    "name": {"type": "str"},
                    "version": {"type": "str", "default": "$Default"},
                },
                "required_one_of": [["id", "name"]],
                "mutually_exclusive": [["id", "name"]],
            },
            "subnet_id": {"type": "str", "required": True},
            "security_groups": {"type": "list", "elements": "str", "required": True},
            "public_ip": {"type": "bool", "default": True},
            "match_tags": {"type": "dict", "required": True},
            "tags": {"type": "dict", "required": True},
            "iam_instance_profile": {"type": "str", "default": ""},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 600},
        },
        supports_check_mode=True,
    )
    ec2 = module.client("ec2")
    try:
        result = ensure_instance(ec2, module.params, check_mode=module.check_mode)
    except LaunchError as exc:
        module.fail_json(msg=str(exc))
    except (BotoCoreError, ClientError) as exc:
        template = module.params["launch_template"]
        module.fail_json_aws(
            exc, msg=f"cannot launch from template {template.get('name') or template.get('id')}"
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
