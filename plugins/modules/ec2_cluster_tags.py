#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ec2_cluster_tags: set and remove one resource's tags."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_cluster_tags
short_description: Set and remove tags of one EC2 resource in one call each
version_added: 0.1.0
description:
  - Sets the tags of O(tags) that the resource O(resource) lacks or holds with another
    value (one C(CreateTags)) and removes the tags of O(remove) it holds with the value
    given (one C(DeleteTags), which EC2 applies only while the tag holds that value).
    Other tags are left as they are.
  - The resource's tags are read with one C(DescribeTags), unless O(current) gives them
    as the caller read them just before (the listing of the cluster's instances), so
    recording names on a cluster's master is one call.
options:
  resource:
    description: The resource's id (an instance, volume, launch template, ...).
    type: str
    required: true
  tags:
    description: Tags the resource should hold.
    type: dict
    default: {}
  remove:
    description: Tags to remove, each only while it holds the value given.
    type: dict
    default: {}
  current:
    description:
      - The resource's tags as the caller read them just before. Given, they are not read
        again; a tag someone changed in between is then set or removed as if it were as
        given.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Reports the tags it would set and remove, changing nothing.
  diff_mode:
    support: full
    details: Shows the resource's tags before and after.
  platform:
    platforms: all
    details: It only calls the EC2 API, usually from the controller (C(localhost)).
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record two nodes' names on the master and drop a name tag no longer used
  segway.cluster.ec2_cluster_tags:
    resource: i-0123456789abcdef0
    tags:
      "segway:names:1": i-0aaaaaaaaaaaaaaaa=node001 i-0bbbbbbbbbbbbbbbb=node002
    remove:
      "segway:names:2": i-0cccccccccccccccc=node010
"""

RETURN = r"""
set:
  description: The tags set.
  returned: always
  type: dict
removed:
  description: The tags removed.
  returned: always
  type: dict
tags:
  description: The resource's tags after the call.
  returned: always
  type: dict
"""

import contextlib  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.ec2_tags import ensure_tags  # noqa: E402


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "resource": {"type": "str", "required": True},
            "tags": {"type": "dict", "default": {}},
            "remove": {"type": "dict", "default": {}},
            "current": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = ensure_tags(
            module.client("ec2"),
            params["resource"],
            params["tags"],
            params["remove"],
            current=params["current"],
            check_mode=module.check_mode,
        )
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg=f"cannot tag {params['resource']}")
    if not result["changed"]:
        del result["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
