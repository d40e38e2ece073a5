"""plugins/filter/ec2_cluster.py: each filter name reaches its function, and the summary
renders through Jinja as a playbook writes it."""

from __future__ import annotations

import jinja2
from ansible_collections.segway.cluster.plugins.filter import ec2_cluster as ec2_cluster_filter
from ansible_collections.segway.cluster.plugins.filter.ec2_cluster import FilterModule
from ansible_collections.segway.cluster.plugins.module_utils import cluster_summary, ec2_cluster


def test_every_filter_is_its_module_utils_function() -> None:
    assert FilterModule().filters() == {
        "ec2_cluster_summary": cluster_summary.cluster_summary,
        "local_cluster_summary": cluster_summary.local_cluster_summary,
        "ec2_cluster_node_names": ec2_cluster.new_node_names,
        "ec2_cluster_names_update": ec2_cluster_filter.names_update,
        "ec2_cluster_node_map": ec2_cluster.node_names,
        "ec2_cluster_free_names": ec2_cluster.free_node_names,
        "ec2_cluster_pool_error": ec2_cluster.pool_error_text,
        "ec2_cluster_subnet": ec2_cluster.choose_subnet,
        "ec2_cluster_name_clashes": ec2_cluster.name_clash_labels,
        "ec2_cluster_owner_check": ec2_cluster.owner_check,
        "ec2_cluster_with_placement_groups": ec2_cluster.with_placement_groups,
        "ec2_cluster_autoscale_policy": ec2_cluster.autoscale_policy,
        "ec2_cluster_with_autoscale_roles": ec2_cluster.with_autoscale_roles,
    }


def test_filters_take_keyword_and_positional_arguments_in_jinja() -> None:
    env = jinja2.Environment(autoescape=True)
    env.filters.update(FilterModule().filters())
    hostvars = {
        "master": {
            "ansible_host": "198.51.100.5",
            "segway_instance_type": "m7i.large",
            "segway_role": "master",
            "segway_zone": "us-east-1b",
        }
    }
    rendered = env.from_string(
        "{{ (hv | ec2_cluster_summary(cluster='c1', region='us-east-1', ssh_user='admin',"
        " prices={'m7i.large': 0.1008})).ssh_command }}"
        " {{ clashes | ec2_cluster_name_clashes('vpc-1', false) | join(',') }}"
    ).render(hv=hostvars, clashes=[{"kind": "security group", "id": "sg-1", "vpc_id": "vpc-1"}])
    assert rendered == "ssh admin@198.51.100.5 security group sg-1"
