# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the playbooks and of roles/local_cluster: the logic that was Jinja loops.

playbooks/launch.yml: cluster_size, launch_summary_lines; teardown.yml: teardown_report;
status.yml: status_lines; example_job.yml: key_values; remove_nodes.yml: instance_owners;
roles/local_cluster: local_containers, local_node_list, local_volume_plan,
local_ebs_volumes, local_launch_summary, local_teardown_plan, docker_labels.
Each is a pure function of its arguments; the size and volume rules live in
plugins/module_utils/cluster.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.segway.cluster.plugins.module_utils.cluster import (
    jinja_str,
    local_node_list,
    local_volume_plan,
    resolve_size,
)

DOCUMENTATION = r"""
---
name: cluster_size
short_description: Resolve a cluster size along its extends chain, with the overrides
version_added: 0.1.0
description:
  - The size named I(name) of the input sizes and I(custom) (which win), built from the
    base sizes of its C(extends) chain, then the size itself, then each of I(overrides)
    (C(master_type), C(compute_type), C(compute_count)) that is not empty.
  - Returns the resolved C(master_type), C(compute_type), C(compute_count) (and
    C(description), C(extends)) with C(name), C(chain) and C(error), empty for a usable
    size, else one sentence naming the size, the bad value and what is allowed (an
    unknown size or key, an C(extends) that is not a size or loops, a bad C(compute_count)).
  - The same file holds the filters C(launch_summary_lines), C(status_lines),
    C(teardown_report), C(key_values), C(instance_owners), C(local_containers),
    C(local_node_list), C(local_volume_plan), C(local_ebs_volumes), C(local_launch_summary),
    C(local_teardown_plan) and C(docker_labels) of the playbooks and roles/local_cluster.
positional: name, custom, overrides
options:
  _input:
    description: The sizes of playbooks/vars/sizes.yml (C(cluster_sizes)).
    type: dict
    required: true
  name:
    description: The size asked for.
    type: raw
    required: true
  custom:
    description: The user's own sizes (C(custom_sizes)).
    type: raw
  overrides:
    description:
      - C(master_type), C(compute_type) and C(compute_count) given on their own.
      - Empty ones are ignored.
    type: dict
"""

EXAMPLES = r"""
- name: Resolve -e size=large
  ansible.builtin.set_fact:
    wanted: "{{ cluster_sizes | segway.cluster.cluster_size('large', {}, {'compute_count': 3}) }}"
"""

RETURN = r"""
_value:
  description: The resolved size, with C(name), C(chain) (the size first) and C(error).
  type: dict
"""


def cluster_size(
    sizes: Any, name: Any, custom: Any = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return resolve_size(sizes, name, custom, overrides)


def launch_summary_lines(summary: Mapping[str, Any], configured: bool) -> list[str]:
    """What launch.yml prints at the end: the cluster, its nodes, the cost, and the next
    commands (configure=false: how to configure the nodes)."""
    s = summary
    computes = [n for n in s["nodes"] if n["role"] == "compute"]
    lines = [
        f"Cluster {s['cluster']} ({s['provider']}, {s['zone']}): master + {len(computes)}"
        " compute nodes",
        f"Master: {s['master_address']}   log in: {s['ssh_command']}",
    ]
    lines += [
        f"  {n['name']}  {n['address']}  private {n['private_ip']}  {n['type']}  {n['market']}"
        f"  {n['instance_id']}"
        for n in s["nodes"]
    ]
    lines.append(f"Estimated cost: ${s['cost_per_hour']:.4f} per hour ({s['price_note']})")
    lines += s["notes"]
    args = f" -e provider={s['provider']} -e cluster_name={s['cluster']}"
    if "region" in s:
        args += f" -e region={s['region']}"
    if not configured and s["provider"] == "local":
        lines.append(
            "configure=false: the nodes were NOT configured. Configure them with:"
            f" ansible-playbook playbooks/launch.yml{args}"
        )
    elif not configured:
        lines.append(
            "configure=false: the nodes were NOT configured. Configure them with:"
            f" SEGWAY_CLUSTER={s['cluster']} ansible-playbook -i inventory/ec2_segway.py"
            " playbooks/configure.yml"
        )
    else:
        lines += [
            "Submit a job: log in as above, then  qsub -cwd -b y -l mem_requested=1G hostname"
            "  (Grid Engine is on the login PATH; DRMAA_LIBRARY_PATH is set for Segway)",
            "Example DRMAA job with Segway's memory request:  ansible-playbook"
            f" playbooks/example_job.yml{args}",
            f"Nodes, mem_requested and jobs:  ansible-playbook playbooks/status.yml{args}",
            f"Tear down:  ansible-playbook playbooks/teardown.yml{args}  (data volumes are kept)",
        ]
    return lines


def _whole_or_zero(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def status_lines(
    summary: Mapping[str, Any], master: str, master_vars: Mapping[str, Any] | None
) -> list[str]:
    """What status.yml prints: the nodes, on EC2 the cost, and Grid Engine's view from the
    master's registered results (status_jobs, status_qhost, status_queues), or why it is
    missing (status_sge_error, or no master)."""
    s = summary
    nodes = s["nodes"]
    lines = [
        f"Cluster {s['cluster']} ({s['provider']}): "
        + (f"{len(nodes)} nodes" if nodes else "no nodes found")
    ]
    lines += [
        f"  {n['name']}  {n['role']}  {n['address']}  private {n['private_ip']}  {n['type']}"
        f"  {n['market']}  {n['instance_id']}  {n.get('state', 'running')}"
        for n in nodes
    ]
    if s["provider"] == "ec2":
        lines.append(f"Estimated cost: ${s['cost_per_hour']:.4f} per hour ({s['price_note']})")
        lines += s["notes"]
    mv = master_vars or {}
    if not master:
        lines.append("Grid Engine not shown: the cluster has no running master.")
    elif mv.get("status_sge_error") is not None:
        lines.append(mv["status_sge_error"])
    else:
        jobs = dict(line.split() for line in mv["status_jobs"]["stdout_lines"])
        errors = (
            f" ({jobs['error']} in error state, see qstat -j JOB)"
            if _whole_or_zero(jobs["error"]) > 0
            else ""
        )
        lines.append(
            f"Jobs: {jobs['running']} running, {jobs['pending']} pending{errors}"
            " (an array job counts once)"
        )
        lines.append("qhost -F mem_requested:")
        lines += [f"  {line}" for line in mv["status_qhost"]["stdout_lines"]]
        lines.append("qstat -g c:")
        lines += [f"  {line}" for line in mv["status_queues"]["stdout_lines"]]
        lines += autoscale_lines(mv.get("status_autoscale", {}).get("stdout_lines", []))
    return lines


def autoscale_lines(log_lines: Sequence[str]) -> list[str]:
    """The autoscaler's last passes (lines of /var/log/segway-autoscale.log, one JSON
    record each, as sge_autoscale writes them), or nothing when it never ran."""
    passes = []
    for line in log_lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short while being written
        if isinstance(record, dict) and "summary" in record:
            passes.append(record)
    if not passes:
        return []
    return [f"Autoscaler, last {len(passes)} pass(es) (playbooks/balance.yml):"] + [
        f"  {record['summary']}" for record in passes
    ]


def teardown_report(
    cluster: str,
    nothing: bool,
    group_notes: Sequence[str] = (),
    kept_volumes: Sequence[Mapping[str, Any]] = (),
    kept_local: Sequence[str] = (),
) -> str:
    """teardown.yml's last message: torn down (or nothing to do), the security groups
    something else still holds, and the volumes kept."""
    report = [
        f"Cluster {cluster} " + ("has nothing left to tear down." if nothing else "is torn down.")
    ]
    if group_notes:
        report.append(f"NOT deleted: {' '.join(group_notes)}")
    if kept_volumes:
        labels = ", ".join(f"{v['id']} {v['label']}" for v in kept_volumes)
        report.append(
            f"Kept volumes: {labels} (delete_volumes=true deletes the ones launch created)."
        )
    if kept_local:
        report.append(f"Kept: {', '.join(kept_local)} (delete them with -e delete_volumes=true).")
    return " ".join(report)


def key_values(lines: Sequence[str], sep: str = ": ") -> dict[str, str]:
    """The lines that hold sep, as {before: after} (the first sep splits)."""
    return dict(line.split(sep, 1) for line in lines if sep in line)


def instance_owners(hosts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Hosts of the EC2 inventory (hostvars) as the resources roles/ec2_cluster's owner
    check compares with the caller: {kind: instance, id, name, owner}."""
    return [
        {
            "kind": "instance",
            "id": hv["segway_instance_id"],
            "name": hv["segway_node"],
            "owner": hv["segway_owner"],
        }
        for hv in hosts
    ]


def local_containers(inspected: Sequence[Mapping[str, Any]], network: str) -> list[dict[str, Any]]:
    """A local cluster's containers (docker inspect's output) as its nodes: name, role,
    container, id, state, ip (on the cluster's network) and image, the master first,
    then by name."""
    found = []
    for c in inspected:
        labels = c["Config"].get("Labels") or {}
        nets = c["NetworkSettings"].get("Networks") or {}
        container = c["Name"].removeprefix("/")
        found.append(
            {
                "name": labels.get("segway.node", container),
                "role": labels.get("segway.role", "compute"),
                "container": container,
                "id": c["Id"][:12],
                "state": c["State"]["Status"],
                "ip": nets.get(network, {}).get("IPAddress", ""),
                "image": c["Config"]["Image"],
            }
        )
    # Jinja's sort, which these were: stable and blind to case.
    found.sort(key=lambda n: jinja_str(n["name"]).lower())
    found.sort(key=lambda n: jinja_str(n["role"]).lower(), reverse=True)
    return found


def local_nodes_wanted(found: Sequence[Mapping[str, Any]], count: Any) -> list[dict[str, Any]]:
    """roles/local_nodes' node list: the master, node001..node<count>, and every other
    compute node found (launch never removes one)."""
    existing = [n["name"] for n in found if n["role"] == "compute"]
    return local_node_list(count, existing)


def local_grow_count(found: Sequence[Mapping[str, Any]], extra: Any) -> int:
    """The compute_count that makes launch add exactly `extra` compute containers to the
    ones found: launch wants node001..node<count> and keeps every other one, so the gaps
    below the count are filled first (balance.yml's scale-up)."""
    existing = {n["name"] for n in found if n["role"] == "compute"}
    wanted = len(existing) + int(extra)
    count = 0
    while len(existing | {f"node{i:03d}" for i in range(1, count + 1)}) < wanted:
        count += 1
    return count


def local_ebs_volumes(
    data_volumes: Sequence[Mapping[str, Any]], devices: Mapping[str, str], fstype: str, user: str
) -> list[dict[str, Any]]:
    """roles/ebs_mount's volumes on the master: each data volume on the loop device of
    its image file."""
    return [
        {
            "name": v["name"],
            "device": devices[v["image"]],
            "mount_point": v["mount"],
            "fstype": fstype,
            "owner": user,
            "group": user,
            "mode": "0755",
            "share": v["shared"],
        }
        for v in data_volumes
    ]


def local_summary_nodes(
    found: Sequence[Mapping[str, Any]], with_state: bool = False
) -> list[dict[str, Any]]:
    """The containers as the summary lists nodes (the shape of an EC2 node's entry)."""
    nodes = []
    for n in found:
        node = {
            "name": n["name"],
            "role": n["role"],
            "address": n["container"],
            "private_ip": n["ip"],
            "type": "container",
            "market": "local",
            "instance_id": n["id"],
        }
        if with_state:
            node["state"] = n["state"]
        node["price_per_hour"] = 0.0
        nodes.append(node)
    return nodes


def local_launch_summary(
    found: Sequence[Mapping[str, Any]],
    *,
    cluster: str,
    host: str,
    user: str,
    data_volumes: Sequence[Mapping[str, Any]],
    devices: Mapping[str, str],
    compute_count: Any,
) -> dict[str, Any]:
    """roles/local_cluster's summary of a launch, in the shape of roles/ec2_cluster's."""
    notes = [
        f"Volume {v['name']}: {v['mount']} on the master, image file {v['image']} ({v['size']}"
        f" GiB, sparse) on {devices[v['image']]}; teardown keeps it unless delete_volumes=true."
        for v in data_volumes
    ]
    notes.append(
        f"The nodes share /home and /segway-build through docker volumes {cluster}-home and"
        f" {cluster}-segway-build (kept by teardown unless delete_volumes=true)"
        + (
            "; every compute node mounts the data volumes at the same paths, from the same"
            " loop devices."
            if data_volumes
            else "."
        )
    )
    computes = [n for n in found if n["role"] == "compute"]
    if len(computes) > int(compute_count):
        notes.append(
            f"The cluster has {len(computes)} compute nodes, more than the {compute_count}"
            " asked for: launch never removes nodes."
        )
    return {
        "cluster": cluster,
        "provider": "local",
        "zone": f"containers on {host}",
        "master_address": f"{cluster}-master",
        "ssh_command": f"docker exec -it {cluster}-master su - {user}",
        "nodes": local_summary_nodes(found),
        "cost_per_hour": 0.0,
        "price_note": "containers on this machine cost nothing",
        "notes": notes,
    }


def local_teardown_plan(teardown: Mapping[str, Any]) -> dict[str, Any]:
    """What teardown of a local cluster does, one line per action (for the confirmation),
    and whether there is nothing to do: keeping volumes is not a change."""
    t = teardown
    plan = [
        f"remove container {c['container']} ({c['name']}, {c['state']})" for c in t["containers"]
    ]
    plan += [f"remove network {n}" for n in t["networks"]]
    plan += [f"detach loop device {lo['name']} ({lo['back-file']})" for lo in t["loops"]]
    plan += [
        f"DELETE volume image {f} and its data (delete_volumes=true)"
        if f in t["delete_images"]
        else f"keep volume image {f}"
        for f in t["images"]
    ]
    plan += [
        f"DELETE docker volume {v} and its data (delete_volumes=true)"
        if v in t["delete_docker_volumes"]
        else f"keep docker volume {v}"
        for v in t["docker_volumes"]
    ]
    changes = ("containers", "networks", "loops", "delete_images", "delete_docker_volumes")
    return {"plan": plan, "empty": not any(t[key] for key in changes)}


def docker_labels(inspected: Sequence[Mapping[str, Any]], label: str) -> list[str]:
    """The value of label on each inspected docker object ('' where it has none)."""
    return [(o.get("Labels") or {}).get(label, "") for o in inspected]


class FilterModule:
    def filters(self):
        return {
            "cluster_size": cluster_size,
            "launch_summary_lines": launch_summary_lines,
            "status_lines": status_lines,
            "teardown_report": teardown_report,
            "key_values": key_values,
            "instance_owners": instance_owners,
            "local_containers": local_containers,
            "local_node_list": local_nodes_wanted,
            "local_grow_count": local_grow_count,
            "local_volume_plan": local_volume_plan,
            "local_ebs_volumes": local_ebs_volumes,
            "local_launch_summary": local_launch_summary,
            "local_teardown_plan": local_teardown_plan,
            "docker_labels": docker_labels,
        }
