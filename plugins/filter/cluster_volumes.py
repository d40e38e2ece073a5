# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters segway.cluster.ec2_volume_plan and segway.cluster.mount_problem."""

from __future__ import annotations

from ansible_collections.segway.cluster.plugins.module_utils.cluster_volumes import (
    mount_problem,
    plan_volumes,
)

DOCUMENTATION = r"""
---
name: ec2_volume_plan
short_description: Check launch's volumes input and plan the cluster's EC2 volumes
version_added: 0.1.0
description:
  - Returns C(problems) (each naming the entry, the bad value and what is allowed) and
    C(volumes), the cluster's own C(/home) volume first, then its C(/segway-build) volume
    (unless O(build_size) is 0), then each data volume with its name, Name tag, mount
    point, whether it is shared, its type, whether launch creates it, and C(format)
    (C(if_blank) only for a volume launch creates empty).
positional: cluster, home_size, build_size
options:
  _input:
    description: The C(volumes) input.
    type: raw
    required: true
  cluster:
    description: The cluster's name.
    type: str
    required: true
  home_size:
    description: Size in GiB of the /home volume.
    type: raw
    required: true
  build_size:
    description:
      - Size in GiB of the C(/segway-build) volume (Segway's environment and GMTK, kept by
        teardown like C(/home)); V(0) for none.
    type: raw
    default: 20
"""


class FilterModule:
    def filters(self):
        return {"ec2_volume_plan": plan_volumes, "mount_problem": mount_problem}
