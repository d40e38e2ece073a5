# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the node roles (roles/nfs): segway.cluster.nfs_shared_paths,
nfs_mount_options and nfs_ganesha_ids. Each takes the role's inputs and returns what its
templates and tasks use; Jinja only hands the values over."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
---
name: nfs_shared_paths
short_description: Mount points of the master's volumes that roles/nfs exports
version_added: 0.1.0
description:
  - Returns the sorted mount points of the volumes whose C(share) is true or not given
    (roles/ebs_mount's C(ebs_mount_volumes) entries, as the master has them).
  - The same file holds C(nfs_mount_options) (a compute node's mount options of each export,
    C(ro) in place of C(rw) for the read-only ones) and C(nfs_ganesha_ids) (Ganesha's
    Export_Id of each path, from the path's sha1 unless given).
options:
  _input:
    description: The volumes, each a dict with C(mount_point) and maybe C(share).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
# ['/data'] for [{name: data, mount_point: /data}, {name: s, mount_point: /s, share: false}]
nfs_shared_volume_paths: "{{ nfs_server_volumes | segway.cluster.nfs_shared_paths }}"
# {'/home': 'rw,hard', '/segway-build': 'ro,hard'}
nfs_client_path_options: >-
  {{ nfs_exports | segway.cluster.nfs_mount_options(nfs_read_only_exports, ['rw', 'hard']) }}
nfs_ganesha_ids: "{{ nfs_exports | segway.cluster.nfs_ganesha_ids(nfs_ganesha_export_ids) }}"
"""

RETURN = r"""
_value:
  description: The mount points, sorted.
  type: list
  elements: str
"""


def nfs_shared_paths(volumes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Mount points of the volumes to export: share true, or not given (the default)."""
    bad = [v for v in volumes if not isinstance(v, Mapping) or not v.get("mount_point")]
    if bad:
        raise AnsibleFilterError(
            f"nfs_server_volumes entries {bad} are not allowed: "
            "each must be a dict with a mount_point"
        )
    return sorted(v["mount_point"] for v in volumes if v.get("share", True))


def nfs_mount_options(
    exports: Iterable[str], read_only: Iterable[str], options: Iterable[str]
) -> dict[str, str]:
    """Each export's mount options, comma-joined: `options` as given, or for a read-only
    path `ro` first and without any rw or ro of its own (a node must never mount it rw)."""
    options = list(options)
    ro_options = ["ro"] + [o for o in options if o not in ("rw", "ro")]
    read_only = set(read_only)
    return {path: ",".join(ro_options if path in read_only else options) for path in exports}


def nfs_ganesha_ids(exports: Iterable[str], overrides: Mapping[str, Any] | None = None) -> dict:
    """Ganesha's Export_Id of each path: the first 16 bits of the path's sha1, so that adding
    or removing one export never renumbers the others; `overrides` wins for its paths (and
    may name paths that are not exported: the role's check then sees every id)."""
    ids: dict[str, Any] = {
        path: int(hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()[:4], 16)
        for path in exports
    }
    ids.update(overrides or {})
    return ids


class FilterModule:
    def filters(self):
        return {
            "nfs_shared_paths": nfs_shared_paths,
            "nfs_mount_options": nfs_mount_options,
            "nfs_ganesha_ids": nfs_ganesha_ids,
        }
