# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cluster's security group in few calls (segway.cluster.ec2_cluster_security_group).

SSH from the given CIDRs and all traffic between the group's members, nothing else
inbound. One DescribeSecurityGroups (by name in the VPC); a missing group is created with
its tags (CreateSecurityGroup with TagSpecifications) and given its rules with one
AuthorizeSecurityGroupIngress. A group of the name that is not tagged as the cluster's is
never taken over. An existing group of the cluster gets only the rules it lacks (one
Authorize), loses the inbound rules it should not have (one Revoke) and gets the tags it
lacks (one CreateTags); outbound rules are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.segway.cluster.plugins.module_utils.ec2_cluster import tag_dict
from ansible_collections.segway.cluster.plugins.module_utils.ec2_tags import tag_list

CLUSTER_TAG = "segway:cluster"
SSH_PORT = 22
DUPLICATE = "InvalidGroup.Duplicate"

# A rule, one source each: (protocol, from port, to port, kind, source); the ports are
# ints, or None for all protocols.
Rule = tuple[str, Any, Any, str, str]


class GroupError(Exception):
    """A group launch may not take over (one of the name that is not the cluster's)."""


def wanted_rules(ssh_cidrs: Iterable[str], group_id: str) -> set[Rule]:
    """SSH (tcp 22) from each CIDR (IPv4 or IPv6), all traffic from the group itself."""
    rules: set[Rule] = {
        ("tcp", SSH_PORT, SSH_PORT, "cidr6" if ":" in c else "cidr", c) for c in ssh_cidrs
    }
    rules.add(("-1", None, None, "group", group_id))
    return rules


def current_rules(permissions: Iterable[Mapping[str, Any]]) -> set[Rule]:
    """The inbound rules of a group, as DescribeSecurityGroups gives its IpPermissions."""
    rules: set[Rule] = set()
    for perm in permissions:
        proto = str(perm.get("IpProtocol", ""))
        ports = (None, None) if proto == "-1" else (perm.get("FromPort"), perm.get("ToPort"))
        rules.update((proto, *ports, "cidr", r["CidrIp"]) for r in perm.get("IpRanges", []))
        rules.update((proto, *ports, "cidr6", r["CidrIpv6"]) for r in perm.get("Ipv6Ranges", []))
        rules.update(
            (proto, *ports, "group", p["GroupId"]) for p in perm.get("UserIdGroupPairs", [])
        )
        rules.update(
            (proto, *ports, "prefix", p["PrefixListId"]) for p in perm.get("PrefixListIds", [])
        )
    return rules


def permissions(rules: Iterable[Rule], descriptions: Mapping[str, str]) -> list[dict[str, Any]]:
    """IpPermissions of rules, one per protocol and port range; descriptions by kind of
    rule ('ssh', 'group')."""
    by_range: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    for proto, low, high, kind, source in sorted(rules, key=str):
        perm = by_range.setdefault((proto, low, high), {"IpProtocol": proto})
        if low is not None:
            perm["FromPort"], perm["ToPort"] = low, high
        text = descriptions.get("group" if kind == "group" else "ssh", "")
        described = {"Description": text} if text else {}
        if kind == "cidr":
            perm.setdefault("IpRanges", []).append({"CidrIp": source, **described})
        elif kind == "cidr6":
            perm.setdefault("Ipv6Ranges", []).append({"CidrIpv6": source, **described})
        elif kind == "group":
            perm.setdefault("UserIdGroupPairs", []).append({"GroupId": source, **described})
        else:
            perm.setdefault("PrefixListIds", []).append({"PrefixListId": source})
    return list(by_range.values())


def rule_text(rules: Iterable[Rule]) -> list[str]:
    """Rules for a diff, one line each."""
    return sorted(
        f"{'all' if p == '-1' else p}{'' if lo is None else f' {lo}-{hi}'} from {src}"
        for p, lo, hi, _kind, src in rules
    )


def find_group(ec2: Any, name: str, vpc_id: str) -> dict[str, Any] | None:
    """The group called name in vpc_id (one DescribeSecurityGroups), or None."""
    found = ec2.describe_security_groups(
        Filters=[
            {"Name": "group-name", "Values": [name]},
            {"Name": "vpc-id", "Values": [vpc_id]},
        ]
    )["SecurityGroups"]
    return found[0] if found else None


def create_group(
    ec2: Any, name: str, description: str, vpc_id: str, tags: Mapping[str, str]
) -> str:
    """CreateSecurityGroup with its tags; GroupError when EC2 holds a group of the name in
    the VPC already (not the cluster's, or the caller would have found it)."""
    try:
        return ec2.create_security_group(
            GroupName=name,
            Description=description,
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
        )["GroupId"]
    except Exception as exc:
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == DUPLICATE:
            raise GroupError(
                f"security group {name} exists in {vpc_id} and is not tagged "
                f"{CLUSTER_TAG}={tags[CLUSTER_TAG]}: launch never takes it over. Choose "
                "another cluster_name, or delete or rename it. Nothing of it was changed."
            ) from exc
        raise


def ensure_group(
    ec2: Any,
    *,
    cluster: str,
    name: str,
    description: str,
    vpc_id: str,
    ssh_cidrs: Sequence[str],
    tags: Mapping[str, Any],
    descriptions: Mapping[str, str],
    check_mode: bool = False,
    known: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Bring the cluster's group to its rules and tags; returns {changed, group_id,
    created, authorized, revoked, tagged, diff}. known: the group as the caller read it
    ({id, tags, ip_permissions}; {} when it found none), not read again when given."""
    wanted_tags = {CLUSTER_TAG: cluster, **{k: str(v) for k, v in tags.items()}}
    if known is None:
        group = find_group(ec2, name, vpc_id)
    elif known:
        group = {
            "GroupId": known["id"],
            "Tags": tag_list(known.get("tags", {})),
            "IpPermissions": known.get("ip_permissions", []),
        }
    else:
        group = None
    result: dict[str, Any] = {"created": False, "authorized": [], "revoked": [], "tagged": {}}
    if group is None:
        result["created"] = True
        group_id = ""
        if not check_mode:
            group_id = create_group(ec2, name, description, vpc_id, wanted_tags)
        have: set[Rule] = set()
        have_tags: dict[str, str] = {}
    else:
        group_id = group["GroupId"]
        have_tags = tag_dict(group.get("Tags"))
        if have_tags.get(CLUSTER_TAG) != cluster:
            raise GroupError(
                f"security group {name} ({group_id}) exists in {vpc_id} and is not tagged "
                f"{CLUSTER_TAG}={cluster}: launch never takes it over. Choose another "
                "cluster_name, or delete or rename it. Nothing of it was changed."
            )
        have = current_rules(group.get("IpPermissions", []))
    want = wanted_rules(ssh_cidrs, group_id or "the new group")
    add, drop = want - have, have - want
    missing_tags = {k: v for k, v in wanted_tags.items() if have_tags.get(k) != v}
    result["authorized"] = rule_text(add)
    result["revoked"] = rule_text(drop)
    result["tagged"] = {} if result["created"] else missing_tags
    if not check_mode:
        if add:
            ec2.authorize_security_group_ingress(
                GroupId=group_id, IpPermissions=permissions(add, descriptions)
            )
        if drop:
            ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=permissions(drop, {}))
        if result["tagged"]:
            ec2.create_tags(Resources=[group_id], Tags=tag_list(result["tagged"]))
    result["group_id"] = group_id
    result["changed"] = bool(result["created"] or add or drop or result["tagged"])
    result["diff"] = {
        "before": {"rules": rule_text(have), "tags": have_tags} if group else {},
        "after": {"rules": rule_text(want), "tags": {**have_tags, **wanted_tags}},
    }
    return result
