# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set and remove tags of one EC2 resource in one call each (segway.cluster.ec2_cluster_tags).

The tags the resource has are read with one DescribeTags, or taken from the caller, who
read them just before (the listing of the cluster's instances); then one CreateTags sets
the tags it lacks or holds with another value, and one DeleteTags removes the tags to
remove, each only while it holds the value given (EC2 checks the value)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def tag_list(tags: Mapping[str, Any]) -> list[dict[str, str]]:
    """Tags as EC2's API takes them ([{"Key": ..., "Value": ...}], sorted by key)."""
    return [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]


def fetch_tags(ec2: Any, resource: str) -> dict[str, str]:
    """The resource's tags (one DescribeTags, paginated)."""
    return {
        t["Key"]: t["Value"]
        for page in ec2.get_paginator("describe_tags").paginate(
            Filters=[{"Name": "resource-id", "Values": [resource]}]
        )
        for t in page["Tags"]
    }


def tag_changes(
    current: Mapping[str, str], tags: Mapping[str, Any], remove: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """(the tags to set, the tags to remove): those of tags the resource lacks or holds
    with another value; those of remove it holds with the value given (and tags does not
    set)."""
    to_set = {k: str(v) for k, v in tags.items() if current.get(k) != str(v)}
    to_remove = {k: str(v) for k, v in remove.items() if k not in tags and current.get(k) == str(v)}
    return to_set, to_remove


def ensure_tags(
    ec2: Any,
    resource: str,
    tags: Mapping[str, Any],
    remove: Mapping[str, Any],
    *,
    current: Mapping[str, str] | None = None,
    check_mode: bool = False,
) -> dict[str, Any]:
    """Returns {changed, set, removed, tags (after), diff}."""
    before = dict(current) if current is not None else fetch_tags(ec2, resource)
    to_set, to_remove = tag_changes(before, tags, remove)
    if not check_mode:
        if to_set:
            ec2.create_tags(Resources=[resource], Tags=tag_list(to_set))
        if to_remove:
            ec2.delete_tags(Resources=[resource], Tags=tag_list(to_remove))
    after = {k: v for k, v in {**before, **to_set}.items() if k not in to_remove}
    return {
        "changed": bool(to_set or to_remove),
        "set": to_set,
        "removed": to_remove,
        "tags": after,
        "diff": {"before": before, "after": after},
    }
