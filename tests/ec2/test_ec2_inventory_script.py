"""inventory/ec2_segway.py: its settings, cache and errors, and its listing on moto.

The groups and host variables of a launched cluster are checked in test_ec2_lifecycle.py;
the listing's pure parts (private-only nodes reached through the master, spot instances
as EC2 reports them, unnamed or duplicated nodes, the ProxyCommand's quoting, a listing
that would mix clusters) in tests/unit/plugins/module_utils/test_ec2_cluster_inventory.py,
as plugins/module_utils/ec2_cluster.py builds it for this script and for the module
segway.cluster.ec2_cluster_info alike. Here: the command line, the refusals (a wildcard
cluster, a listing that would mix clusters, an untrusted or corrupt cache) and the
settings reaching the host variables.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from ec2_moto import ec2_client
from ec2_testlib import INVENTORY_SCRIPT, launch_node, run_inventory

spec = importlib.util.spec_from_file_location("ec2_segway", INVENTORY_SCRIPT)
assert spec and spec.loader
inventory = importlib.util.module_from_spec(spec)
sys.modules["ec2_segway"] = inventory  # dataclasses look their module up there
spec.loader.exec_module(inventory)


def test_settings_command_line_beats_environment_beats_config() -> None:
    args = inventory.parse_args(["--list", "--region", "eu-west-1"])
    env = {"AWS_REGION": "us-west-2", "SEGWAY_CLUSTER": "envc", "SEGWAY_INVENTORY_CACHE_TTL": "30"}
    config = {"region": "ap-south-1", "cluster": "confc", "ssh_user": "debian"}
    settings = inventory.resolve_settings(args, env, config)
    assert (settings.region, settings.cluster, settings.cache_ttl) == ("eu-west-1", "envc", 30)
    assert settings.ssh_user == "debian"
    with pytest.raises(inventory.InventoryError, match="cache TTL must be whole seconds"):
        inventory.resolve_settings(args, {"SEGWAY_INVENTORY_CACHE_TTL": "soon"}, {})


def test_ssh_address_setting_is_public_private_or_refused() -> None:
    args = inventory.parse_args(["--list"])
    assert inventory.resolve_settings(args, {}, {}).ssh_address == "public"
    assert inventory.resolve_settings(args, {}, {"ssh_address": "private"}).ssh_address == "private"
    env = {"SEGWAY_SSH_ADDRESS": "public"}
    assert inventory.resolve_settings(args, env, {"ssh_address": "private"}).ssh_address == "public"
    with pytest.raises(inventory.InventoryError) as err:
        inventory.resolve_settings(args, {"SEGWAY_SSH_ADDRESS": "vpn"}, {})
    assert str(err.value) == (
        "SSH address 'vpn' from SEGWAY_SSH_ADDRESS is not allowed: use public or private"
    )


@pytest.mark.parametrize(
    ("args", "env", "config", "source"),
    [
        (["--cluster", "al*"], {}, {}, "--cluster"),
        ([], {"SEGWAY_CLUSTER": "?"}, {}, "SEGWAY_CLUSTER"),
        ([], {}, {"cluster": "segway-[ab]"}, "the config file (key cluster)"),
        (["--cluster", "My_Cluster"], {}, {}, "--cluster"),
        (["--cluster", "a" * 33], {}, {}, "--cluster"),
    ],
)
def test_cluster_must_be_a_cluster_name_or_all(
    args: list[str], env: dict[str, str], config: dict[str, str], source: str
) -> None:
    parsed = inventory.parse_args(["--list", *args])
    with pytest.raises(inventory.InventoryError) as err:
        inventory.resolve_settings(parsed, env, config)
    message = str(err.value)
    assert f"from {source} is not allowed" in message
    assert "1-32 lowercase letters, digits and hyphens, starting with a letter) or 'all'" in message
    if any(c in message for c in "*?["):
        assert "wildcards such as * and ? are not allowed" in message
    every = inventory.resolve_settings(inventory.parse_args(["--list", "--cluster", "all"]), {}, {})
    assert (every.cluster, every.all_clusters) == (None, True)


def test_wildcard_cluster_stops_the_script_before_asking_ec2(home: Path) -> None:
    result = run_inventory("--list", "--cluster", "al*", endpoint="http://127.0.0.1:9", home=home)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(
        "ec2_segway: ERROR: cluster 'al*' from --cluster is not allowed "
        "(wildcards such as * and ? are not allowed)"
    )


def test_a_listing_of_two_clusters_needs_a_cluster_or_all(moto, home: Path) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    launch_node(ec2, "one", "master", "master")
    launch_node(ec2, "two", "master", "master")
    mixed = run_inventory("--list", endpoint=moto.url, home=home)
    assert mixed.returncode == 1 and mixed.stdout == ""
    assert "running instances of 2 clusters were found (one, two)" in mixed.stderr
    assert "Choose one with SEGWAY_CLUSTER=<name>" in mixed.stderr
    chosen = run_inventory("--list", endpoint=moto.url, home=home, env={"SEGWAY_CLUSTER": "two"})
    assert json.loads(chosen.stdout)["master"]["hosts"] == ["master"]
    every = run_inventory("--list", "--cluster", "all", endpoint=moto.url, home=home)
    listing = json.loads(every.stdout)
    assert listing["master"]["hosts"] == []
    assert listing["cluster_one"]["hosts"] == ["one-master"]
    assert listing["cluster_two"]["hosts"] == ["two-master"]


def test_ssh_settings_reach_the_host_variables(moto, home: Path) -> None:
    """The script hands its SSH settings to the listing it shares with ec2_cluster_info."""
    moto.reset()
    ec2 = ec2_client(moto.url)
    launch_node(ec2, "keyed", "master", "master")
    env = {"SEGWAY_SSH_USER": "debian", "SEGWAY_SSH_PRIVATE_KEY_FILE": "/keys/id"}
    result = run_inventory(
        "--host", "master", endpoint=moto.url, home=home, env=env | {"SEGWAY_CLUSTER": "keyed"}
    )
    assert result.returncode == 0, result.stderr
    hostvars = json.loads(result.stdout)
    assert (hostvars["ansible_user"], hostvars["ansible_become"]) == ("debian", True)
    assert hostvars["ansible_ssh_private_key_file"] == "/keys/id"
    assert hostvars["segway_cluster"] == "keyed" and hostvars["segway_node"] == "master"


def test_cache_answers_within_its_ttl_and_refresh_asks_ec2(
    moto, home: Path, tmp_path: Path
) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "segway:cluster", "Value": "cached"},
                    {"Key": "segway:role", "Value": "master"},
                    {"Key": "segway:node", "Value": "master"},
                ],
            }
        ],
    )
    env = {"SEGWAY_INVENTORY_CACHE_TTL": "300", "SEGWAY_INVENTORY_CACHE_DIR": str(tmp_path)}

    def listed(*extra: str) -> list[str]:
        result = run_inventory(
            "--list", "--cluster", "cached", *extra, endpoint=moto.url, home=home, env=env
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["master"]["hosts"]

    assert listed() == ["master"]
    assert len(list(tmp_path.glob("ec2_segway-*.json"))) == 1
    ids = [
        i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
    ]
    ec2.terminate_instances(InstanceIds=ids)
    assert listed() == ["master"]  # still cached
    assert listed("--refresh-cache") == []
    assert listed() == []


def test_cache_is_written_private_and_an_untrusted_or_corrupt_one_is_ignored(
    moto, home: Path, tmp_path: Path
) -> None:
    moto.reset()
    ec2 = ec2_client(moto.url)
    launch_node(ec2, "cached", "master", "master")
    cache_dir = tmp_path / "cache"
    env = {"SEGWAY_INVENTORY_CACHE_TTL": "300", "SEGWAY_INVENTORY_CACHE_DIR": str(cache_dir)}

    def listed() -> tuple[list[str], str]:
        result = run_inventory(
            "--list", "--cluster", "cached", endpoint=moto.url, home=home, env=env
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return json.loads(result.stdout)["master"]["hosts"], result.stderr

    assert listed() == (["master"], "")
    (path,) = cache_dir.glob("ec2_segway-*.json")
    assert oct(cache_dir.stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    planted = json.loads(path.read_text())
    planted["inventory"]["master"]["hosts"] = ["planted"]
    cases = {
        "its mode is 0644, not 0600": (json.dumps(planted), 0o644),
        "ignoring corrupt cache": ("{not json", 0o600),
        "ignoring corrupt cache ": ("[1, 2]", 0o600),
        "ignoring corrupt cache  ": (json.dumps({"created": 1e12}), 0o600),
    }
    for warning, (text, mode) in cases.items():
        path.write_text(text)
        path.chmod(mode)
        hosts, stderr = listed()
        assert hosts == ["master"], warning
        assert warning.strip() in stderr, stderr
        # Refreshed: the cache holds EC2's answer again, private.
        assert json.loads(path.read_text())["inventory"]["master"]["hosts"] == ["master"]
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    if os.geteuid() == 0:  # another user's cache file (only root can make one here)
        path.write_text(json.dumps(planted))
        path.chmod(0o600)
        os.chown(path, 65534, 65534)
        hosts, stderr = listed()
        assert hosts == ["master"] and "belongs to uid 65534, not to you" in stderr


def test_cache_of_another_user_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ec2_segway-x.json"
    path.write_text(json.dumps({"created": 100.0, "inventory": {"_meta": {"hostvars": {}}}}))
    path.chmod(0o600)
    assert inventory.read_cache(path, 300, 200.0) == {"_meta": {"hostvars": {}}}
    monkeypatch.setattr(inventory.os, "geteuid", lambda: os.getuid() + 1)
    with caplog.at_level(logging.WARNING, logger="ec2_segway"):
        assert inventory.read_cache(path, 300, 200.0) is None
    assert "not to you" in caplog.text
    link = tmp_path / "link.json"
    link.symlink_to(path)
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="ec2_segway"):
        assert inventory.read_cache(link, 300, 200.0) is None  # a link is not followed


def test_errors_go_to_stderr_with_a_non_zero_exit(home: Path) -> None:
    result = run_inventory("--list", endpoint="http://127.0.0.1:9", home=home)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("ec2_segway: ERROR: cannot read EC2 in us-east-1")
    missing = run_inventory("--host", "nowhere", endpoint="http://127.0.0.1:9", home=home)
    assert missing.returncode == 1 and missing.stdout == ""
