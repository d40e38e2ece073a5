#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module segway.cluster.ec2_cluster_lock: one launch of a cluster at a time."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_cluster_lock
short_description: Take or release a cluster's launch lock on EC2
version_added: 0.1.0
description:
  - Two launches of one cluster at the same time would each see the nodes missing and
    launch them twice. Launch takes this lock first and releases it at the end.
  - The lock is an EC2 launch template named O(name). EC2 refuses to create a second
    template of the same name, so taking the lock is atomic across machines and users.
    It carries the cluster's tags, the run's id and when it was taken.
  - Taking a free lock is one CreateLaunchTemplate; the lock is read only when EC2 says
    it is taken (or in check mode, or with O(break_lock=true)).
  - Taking a lock another run holds fails, naming when and by whom it was taken; a lock
    left by a killed run is removed with O(break_lock=true).
options:
  name:
    description: Name of the lock (a launch template name).
    type: str
    required: true
  run_id:
    description: This run's id; the lock is only released by the run that took it.
    type: str
    required: true
  state:
    description: V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  break_lock:
    description: Remove a lock another run holds before taking it.
    type: bool
    default: false
  tags:
    description:
      - Tags of the lock (the cluster's C(segway:cluster) and C(segway:owner)). Without
        C(segway:owner), the caller's ARN (STS) is read, tagged and returned as
        RV(caller_arn).
    type: dict
    default: {}
  lock_id:
    description:
      - With O(state=absent), the id of the lock template this run took (RV(holder.id) of
        the call that took it). It is deleted by id, without reading the lock first.
    type: str
    default: ""
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Reports whether the lock would be taken or released; changes nothing.
  diff_mode:
    support: full
    details: Shows the holder before and after.
  platform:
    platforms: all
    details: It only calls the EC2 API, usually from the controller (C(localhost)).
author:
  - segway.cluster developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Take the launch lock
  segway.cluster.ec2_cluster_lock:
    name: segway-mycluster-launch-lock
    run_id: "{{ lookup('ansible.builtin.pipe', 'date +%s%N') }}"
    tags:
      "segway:cluster": mycluster
"""

RETURN = r"""
holder:
  description: The run that holds the lock after this call (empty when released).
  returned: always
  type: dict
  contains:
    id: {description: The lock template's id., type: str}
    run_id: {description: The holder's run id., type: str}
    started: {description: When it took the lock (UTC)., type: str}
    owner: {description: Its segway:owner tag., type: str}
caller_arn:
  description: The caller's ARN (STS GetCallerIdentity), when taking the lock read it.
  returned: when the lock was taken and O(tags) had no C(segway:owner)
  type: str
"""

import base64  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
from typing import Any  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

RUN_TAG = "segway:lock-run"
STARTED_TAG = "segway:lock-started"
EXISTS = "InvalidLaunchTemplateName.AlreadyExistsException"
NOT_FOUND = ("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound")


def error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


class Lock:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.name = module.params["name"]
        self.run_id = module.params["run_id"]
        self.ec2 = module.client("ec2")
        # The caller's ARN (STS), when taking the lock asked for it.
        self.caller_arn = ""

    def holder(self) -> dict[str, Any] | None:
        try:
            found = self.ec2.describe_launch_templates(LaunchTemplateNames=[self.name])
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND:
                return None
            self.module.fail_json_aws(exc, msg=f"cannot read the launch lock {self.name}")
        except BotoCoreError as exc:
            self.module.fail_json_aws(exc, msg=f"cannot read the launch lock {self.name}")
        templates = found.get("LaunchTemplates", [])
        if not templates:
            return None
        tags = {t["Key"]: t["Value"] for t in templates[0].get("Tags", [])}
        return {
            "id": templates[0]["LaunchTemplateId"],
            "run_id": tags.get(RUN_TAG, ""),
            "started": tags.get(STARTED_TAG, str(templates[0].get("CreateTime", ""))),
            "owner": tags.get("segway:owner", templates[0].get("CreatedBy", "")),
        }

    def delete(self, holder: dict[str, Any]) -> None:
        try:
            self.ec2.delete_launch_template(LaunchTemplateId=holder["id"])
        except ClientError as exc:
            if error_code(exc) not in NOT_FOUND:
                self.module.fail_json_aws(exc, msg=f"cannot remove the launch lock {self.name}")
        except BotoCoreError as exc:
            self.module.fail_json_aws(exc, msg=f"cannot remove the launch lock {self.name}")

    def take(self) -> dict[str, Any]:
        started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        tags = {**self.module.params["tags"], RUN_TAG: self.run_id, STARTED_TAG: started}
        if "segway:owner" not in tags:  # who holds it, for the message another run shows
            try:
                self.caller_arn = self.module.client("sts").get_caller_identity()["Arn"]
                tags["segway:owner"] = self.caller_arn
            except (BotoCoreError, ClientError):
                tags["segway:owner"] = "unknown"
        data = base64.b64encode(b"#!/bin/sh\n# segway.cluster launch lock\nexit 1\n").decode()
        made = self.ec2.create_launch_template(
            LaunchTemplateName=self.name,
            VersionDescription="segway.cluster launch lock: held while a launch runs",
            LaunchTemplateData={"UserData": data},
            TagSpecifications=[
                {
                    "ResourceType": "launch-template",
                    "Tags": [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())],
                }
            ],
        )
        return {
            "id": made.get("LaunchTemplate", {}).get("LaunchTemplateId", ""),
            "run_id": self.run_id,
            "started": started,
            "owner": tags.get("segway:owner", ""),
        }

    def refuse(self, holder: dict[str, Any]) -> None:
        self.module.fail_json(
            msg=(
                f"Another launch of this cluster is running: the launch lock {self.name} was "
                f"taken at {holder['started']} by {holder['owner'] or 'an unknown identity'} "
                f"(run {holder['run_id'] or 'unknown'}). Wait for it to finish and run launch "
                "again. If that launch was killed and left its lock behind, re-run with "
                "-e break_lock=true. Nothing was changed."
            ),
            holder=holder,
        )

    def present(self) -> None:
        # Taking the lock is one CreateLaunchTemplate when it is free (EC2 refuses a second
        # template of the name, so that is the atomic test); the lock is only read when
        # EC2 says it is taken, or in check mode.
        if not self.module.check_mode and not self.module.params["break_lock"]:
            try:
                held = self.take()
            except ClientError as exc:
                if error_code(exc) != EXISTS:
                    self.module.fail_json_aws(exc, msg=f"cannot take the launch lock {self.name}")
            except BotoCoreError as exc:
                self.module.fail_json_aws(exc, msg=f"cannot take the launch lock {self.name}")
            else:
                diff = {"before": "free\n", "after": f"held by run {self.run_id}\n"}
                self.module.exit_json(
                    changed=True, holder=held, caller_arn=self.caller_arn, diff=diff
                )
        current = self.holder()
        if current and current["run_id"] == self.run_id:
            self.module.exit_json(changed=False, holder=current)
        if current and not self.module.params["break_lock"]:
            self.refuse(current)
        diff = {"before": f"{current or 'free'}\n", "after": f"held by run {self.run_id}\n"}
        if self.module.check_mode:
            self.module.exit_json(changed=True, holder={}, diff=diff)
        if current:
            self.delete(current)
        try:
            held = self.take()
        except ClientError as exc:
            if error_code(exc) == EXISTS:  # another run took it between our look and now
                self.refuse(self.holder() or {"started": "just now", "owner": "", "run_id": ""})
            self.module.fail_json_aws(exc, msg=f"cannot take the launch lock {self.name}")
        except BotoCoreError as exc:
            self.module.fail_json_aws(exc, msg=f"cannot take the launch lock {self.name}")
        self.module.exit_json(changed=True, holder=held, caller_arn=self.caller_arn, diff=diff)

    def absent(self) -> None:
        lock_id = self.module.params["lock_id"]
        if lock_id:
            # The id of the template this run created: it is this run's lock (ids are never
            # reused), so it is deleted by id with no look first. Gone already (a
            # break_lock of another run) is fine.
            if not self.module.check_mode:
                self.delete({"id": lock_id})
            self.module.exit_json(
                changed=True, holder={}, diff={"before": f"{lock_id}\n", "after": "free\n"}
            )
        current = self.holder()
        if not current:
            self.module.exit_json(changed=False, holder={})
        if current["run_id"] != self.run_id and not self.module.params["break_lock"]:
            self.module.exit_json(
                changed=False,
                holder=current,
                msg=f"the lock is held by run {current['run_id']}, not this one: left alone",
            )
        if not self.module.check_mode:
            self.delete(current)
        self.module.exit_json(
            changed=True, holder={}, diff={"before": f"{current}\n", "after": "free\n"}
        )


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "run_id": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "break_lock": {"type": "bool", "default": False},
            "tags": {"type": "dict", "default": {}},
            "lock_id": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    lock = Lock(module)
    if module.params["state"] == "present":
        lock.present()
    else:
        lock.absent()


if __name__ == "__main__":
    main()
