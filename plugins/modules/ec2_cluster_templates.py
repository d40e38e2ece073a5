#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ec2_cluster_templates: a cluster's launch templates."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_cluster_templates
short_description: Create or update a cluster's EC2 launch templates in few calls
version_added: 0.1.0
description:
  - Brings the launch templates in O(templates) to their wanted contents. Every template
    requires IMDSv2 (session tokens, one hop) and has an encrypted root volume deleted
    with its instance.
  - The cluster's templates are read once, by the tag C(segway:cluster=)O(cluster), never
    by name alone. A missing template is created (CreateLaunchTemplate) and tagged with
    O(tags) (CreateTags). A template of the same name that is not tagged as the cluster's
    is never taken over; EC2 refuses to create a second one and the module fails, naming
    it.
  - A template the cluster has is read (its default version) and gets a new default
    version only when its contents differ, and the tags of O(tags) it lacks. Nothing is
    ever deleted.
  - "A first launch's two templates cost five calls: one DescribeLaunchTemplates and a
    CreateLaunchTemplate and a CreateTags each (four with O(existing))."
options:
  cluster:
    description: The cluster's name (tag C(segway:cluster)).
    type: str
    required: true
  templates:
    description: The templates wanted.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The template's name.
        type: str
        required: true
      description:
        description: Description of the version created.
        type: str
        default: ""
      image_id:
        description: The image (AMI) id.
        type: str
        required: true
      instance_type:
        description: The instance type.
        type: str
        required: true
      key_name:
        description: The key pair's name.
        type: str
        required: true
      root_device_name:
        description: The image's root device name (such as C(/dev/xvda)).
        type: str
        required: true
      root_volume_size:
        description: Size of the encrypted root volume in GiB.
        type: int
        required: true
      root_volume_type:
        description: EBS type of the root volume.
        type: str
        default: gp3
      iam_instance_profile:
        description: Instance profile (name or ARN); none when empty.
        type: str
        default: ""
      placement_group:
        description: Placement group name; none when empty.
        type: str
        default: ""
      security_groups:
        description:
          - Security group ids of the template's network interface (device 0, with no
            subnet, which the launch gives). Empty, the template has no network interface
            and the launch gives the network.
        type: list
        elements: str
        default: []
      public_ip:
        description: Whether that network interface gets a public IPv4 address.
        type: bool
        default: true
  tags:
    description: Tags of every template (C(segway:cluster) is always among them).
    type: dict
    default: {}
  existing:
    description:
      - The cluster's templates (name to id) as the caller read them just before by the
        tag C(segway:cluster=)O(cluster) (the C(owned.launch_templates) of
        M(segway.cluster.ec2_cluster_info)). Given, they are not read again; a template
        of a wanted name that is not among them is created (and EC2 refuses one that
        exists).
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Reads the cluster's templates and reports what it would create, update or tag.
  diff_mode:
    support: full
    details: Shows each changed template's contents and tags before and after.
  platform:
    platforms: all
    details: It only calls the EC2 API, usually from the controller (C(localhost)).
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Create the master's and the compute nodes' launch templates
  segway.cluster.ec2_cluster_templates:
    cluster: mycluster
    templates:
      - name: segway-mycluster-master-m7i.large
        instance_type: m7i.large
        image_id: ami-0123456789abcdef0
        key_name: segway-mycluster
        root_device_name: /dev/xvda
        root_volume_size: 30
      - name: segway-mycluster-compute-m7i.xlarge
        instance_type: m7i.xlarge
        image_id: ami-0123456789abcdef0
        key_name: segway-mycluster
        root_device_name: /dev/xvda
        root_volume_size: 30
        security_groups: [sg-0123456789abcdef0]
    tags:
      "segway:cluster": mycluster
      "segway:owner": arn:aws:iam::123456789012:user/me
"""

RETURN = r"""
templates:
  description: Each template's id by name (empty for one check mode would create).
  returned: always
  type: dict
  sample: {"segway-mycluster-master-m7i.large": "lt-0123456789abcdef0"}
created:
  description: The templates created.
  returned: always
  type: list
  elements: str
updated:
  description: The templates that got a new default version.
  returned: always
  type: list
  elements: str
tagged:
  description: The existing templates that got missing tags.
  returned: always
  type: list
  elements: str
"""

import contextlib  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.segway.cluster.plugins.module_utils.ec2_templates import (  # noqa: E402
    TemplateError,
    ensure_templates,
)

TEMPLATE_OPTIONS = {
    "name": {"type": "str", "required": True},
    "description": {"type": "str", "default": ""},
    "image_id": {"type": "str", "required": True},
    "instance_type": {"type": "str", "required": True},
    "key_name": {"type": "str", "required": True},
    "root_device_name": {"type": "str", "required": True},
    "root_volume_size": {"type": "int", "required": True},
    "root_volume_type": {"type": "str", "default": "gp3"},
    "iam_instance_profile": {"type": "str", "default": ""},
    "placement_group": {"type": "str", "default": ""},
    "security_groups": {"type": "list", "elements": "str", "default": []},
    "public_ip": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "templates": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": TEMPLATE_OPTIONS,
            },
            "tags": {"type": "dict", "default": {}},
            "existing": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    ec2 = module.client("ec2")
    try:
        result = ensure_templates(
            ec2,
            module.params["cluster"],
            module.params["templates"],
            module.params["tags"],
            check_mode=module.check_mode,
            known=module.params["existing"],
        )
    except TemplateError as exc:
        module.fail_json(msg=str(exc))
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg="cannot create or update the cluster's launch templates")
    if not result["changed"]:
        del result["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
