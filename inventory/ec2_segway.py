#!/usr/bin/env python3
"""Dynamic inventory of segway.cluster clusters on EC2.

    SEGWAY_CLUSTER=segway inventory/ec2_segway.py --list   # one cluster (the usual case)
    inventory/ec2_segway.py --list --cluster all            # every cluster, each in its own group
    inventory/ec2_segway.py --host master                   # one host's variables
    SEGWAY_CLUSTER=segway ansible-playbook -i inventory/ec2_segway.py playbooks/configure.yml

Finds the running instances tagged ``segway:cluster`` and groups them as
``playbooks/launch.yml`` does: ``master``, ``compute`` and ``cluster_<name>``
(hyphens in the name become underscores). With one cluster chosen (``--cluster``,
``SEGWAY_CLUSTER`` or ``cluster =`` in the config file) hosts are named by their node
name (``master``, ``node001``, ...), which is what ``configure.yml`` expects. A compute
node's name is the one its cluster's master records (tags ``segway:names:N`` of
``i-<id>=nodeNNN`` pairs, read from the same DescribeInstances answer), else its own
``segway:node`` tag (clusters of older versions).

The groups ``master`` and ``compute`` never mix two clusters, since a playbook run on
them would configure both as one. With no cluster chosen, the listing works while
the account holds one cluster (hosts named ``<cluster>-<node>``) and stops, naming
the clusters, when it holds several. ``--cluster all`` (or ``SEGWAY_CLUSTER=all``)
asks for every cluster on purpose: hosts are named ``<cluster>-<node>`` and are only
in their ``cluster_<name>`` group; ``master`` and ``compute`` stay empty. A cluster
name is 1-32 lowercase letters, digits and hyphens starting with a letter (no
wildcards); instances whose ``segway:cluster`` tag is not such a name are skipped.

Settings, strongest first: command line, environment, config file, defaults.

=========================  ==================================  =========================
setting                    environment                         config key
=========================  ==================================  =========================
cluster (default: none)    SEGWAY_CLUSTER                      cluster
region                     AWS_REGION, AWS_DEFAULT_REGION      region
profile                    AWS_PROFILE                         profile
endpoint URL               AWS_ENDPOINT_URL                    endpoint_url
cache TTL, s (0 = off)     SEGWAY_INVENTORY_CACHE_TTL          cache_ttl
cache directory            SEGWAY_INVENTORY_CACHE_DIR          cache_dir
SSH user                   SEGWAY_SSH_USER                     ssh_user
SSH private key file       SEGWAY_SSH_PRIVATE_KEY_FILE         ssh_private_key_file
SSH address (public)       SEGWAY_SSH_ADDRESS                  ssh_address
=========================  ==================================  =========================

The config file is ``SEGWAY_INVENTORY_CONFIG`` or ``ec2_segway.ini`` next to this
script, section ``[ec2_segway]``. The cache (off unless a TTL is set) keeps one JSON file
per set of settings, written with mode 0600 in a directory made with mode 0700; a cache
file that is not a regular file of the current user readable by it alone is ignored
(with a warning), and a corrupt one is replaced; ``--refresh-cache`` asks EC2 and
rewrites it. Errors go to stderr and the exit status is 1.

The SSH address is ``public`` (the master, and any node with a public address, by that
address; the other nodes through the master) or ``private`` (every node by its private
address: for a controller inside the VPC, such as a bastion, a VPN or SSM).

Host variables include ``segway_owner``, the ``segway:owner`` tag of the instance (the
ARN of the identity that launched it, empty on instances of older versions), which
playbooks/remove_nodes.yml checks against the caller.

The hosts, groups and host variables are built by plugins/module_utils/ec2_cluster.py,
which the module segway.cluster.ec2_cluster_info uses too: launch.yml and status.yml get
their hosts from that module, so they and this script always agree. This script loads
that file by its path, so it runs from a clone of the repository as well as from an
installed collection.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

LOG = logging.getLogger("ec2_segway")

# The collection's EC2 reads, found next to this script (inventory/ is at the collection's
# root); loaded by path, not imported, as ansible-inventory runs this script standalone.
EC2_CLUSTER = Path(__file__).resolve().parent.parent / "plugins/module_utils/ec2_cluster.py"
ALL_CLUSTERS = "all"

DEFAULT_REGION = "us-east-1"
DEFAULT_CACHE_DIR = "~/.cache/segway-cluster"
CONFIG_SECTION = "ec2_segway"


def load_ec2_cluster(path: Path = EC2_CLUSTER) -> ModuleType:
    """plugins/module_utils/ec2_cluster.py as a module, registered in sys.modules so that
    its classes find their module."""
    spec = importlib.util.spec_from_file_location("segway_ec2_cluster", path)
    if not path.is_file() or spec is None or spec.loader is None:
        sys.stderr.write(f"ec2_segway: ERROR: {path} is missing: run the collection's copy\n")
        sys.exit(1)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EC2 = load_ec2_cluster()
DEFAULT_SSH_USER = EC2.DEFAULT_SSH_USER
# Errors of the listing (two clusters mixed) and of the settings alike: one line on stderr.
InventoryError = EC2.Ec2ClusterError


@dataclass(frozen=True)
class Settings:
    cluster: str | None = None
    # --cluster all: every cluster, each in its own cluster_<name> group only.
    all_clusters: bool = False
    region: str = DEFAULT_REGION
    profile: str | None = None
    endpoint_url: str | None = None
    cache_ttl: int = 0
    cache_dir: str = DEFAULT_CACHE_DIR
    ssh_user: str = DEFAULT_SSH_USER
    ssh_private_key_file: str | None = None
    ssh_address: str = "public"


# ---------------------------------------------------------------- settings


def read_config(path: Path | None) -> dict[str, str]:
    """The [ec2_segway] section of the config file, or {} when there is none."""
    if path is None or not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise InventoryError(f"cannot read {path}: {exc}") from exc
    if not parser.has_section(CONFIG_SECTION):
        return {}
    return {key: value.strip() for key, value in parser.items(CONFIG_SECTION)}


def check_cluster(value: str, source: str) -> str:
    """value if it is a cluster name or 'all'; else an error naming where it came from."""
    if value == ALL_CLUSTERS or EC2.CLUSTER_RE.match(value):
        return value
    hint = " (wildcards such as * and ? are not allowed)" if re.search(r"[*?\[\]]", value) else ""
    raise InventoryError(
        f"cluster {value!r} from {source} is not allowed{hint}: use a cluster name (1-32 "
        f"lowercase letters, digits and hyphens, starting with a letter) or 'all'"
    )


def resolve_settings(
    args: argparse.Namespace, env: Mapping[str, str], config: Mapping[str, str]
) -> Settings:
    """Merge command line, environment, config file and defaults, strongest first."""

    def pick_from(
        arg: str | None, env_names: Sequence[str], key: str, default: Any = None
    ) -> tuple[Any, str]:
        if arg not in (None, ""):
            return arg, "the command line"
        for name in env_names:
            if env.get(name):
                return env[name], name
        if config.get(key):
            return config[key], f"the config file (key {key})"
        return default, "the default"

    def pick(arg: str | None, env_names: Sequence[str], key: str, default: Any = None) -> Any:
        return pick_from(arg, env_names, key, default)[0]

    ttl_text = pick(args.cache_ttl, ["SEGWAY_INVENTORY_CACHE_TTL"], "cache_ttl", "0")
    try:
        cache_ttl = int(ttl_text)
    except (TypeError, ValueError):
        raise InventoryError(f"cache TTL must be whole seconds, got {ttl_text!r}") from None
    if cache_ttl < 0:
        raise InventoryError(f"cache TTL must be 0 (off) or more seconds, got {cache_ttl}")
    address, address_source = pick_from(None, ["SEGWAY_SSH_ADDRESS"], "ssh_address", "public")
    if address not in EC2.SSH_ADDRESSES:
        raise InventoryError(
            f"SSH address {address!r} from {address_source} is not allowed: use "
            f"{' or '.join(EC2.SSH_ADDRESSES)}"
        )
    cluster, source = pick_from(args.cluster, ["SEGWAY_CLUSTER"], "cluster")
    if cluster is not None:
        source = "--cluster" if source == "the command line" else source
        cluster = check_cluster(str(cluster), source)
    return Settings(
        cluster=None if cluster in (None, ALL_CLUSTERS) else cluster,
        all_clusters=cluster == ALL_CLUSTERS,
        region=pick(args.region, ["AWS_REGION", "AWS_DEFAULT_REGION"], "region", DEFAULT_REGION),
        profile=pick(None, ["AWS_PROFILE"], "profile"),
        endpoint_url=pick(None, ["AWS_ENDPOINT_URL"], "endpoint_url"),
        cache_ttl=cache_ttl,
        cache_dir=pick(None, ["SEGWAY_INVENTORY_CACHE_DIR"], "cache_dir", DEFAULT_CACHE_DIR),
        ssh_user=pick(None, ["SEGWAY_SSH_USER"], "ssh_user", DEFAULT_SSH_USER),
        ssh_private_key_file=pick(None, ["SEGWAY_SSH_PRIVATE_KEY_FILE"], "ssh_private_key_file"),
        ssh_address=address,
    )


# ---------------------------------------------------------------- AWS reads


def ec2_client(settings: Settings) -> Any:
    try:
        import boto3  # noqa: PLC0415 - only needed when AWS is asked
        import botocore.config  # noqa: PLC0415
    except ImportError as exc:
        raise InventoryError(f"boto3 is required: {exc}") from exc
    session = boto3.Session(profile_name=settings.profile, region_name=settings.region)
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 5})
    return session.client("ec2", endpoint_url=settings.endpoint_url, config=config)


@contextlib.contextmanager
def aws_errors(settings: Settings) -> Iterator[None]:
    """Turn boto errors into one-line InventoryErrors."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    except ImportError as exc:
        raise InventoryError(f"boto3 is required: {exc}") from exc
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise InventoryError(
            f"EC2 refused {exc.operation_name} in {settings.region}: "
            f"{error.get('Code')}: {error.get('Message')}"
        ) from exc
    except BotoCoreError as exc:
        raise InventoryError(f"cannot read EC2 in {settings.region}: {exc}") from exc


def collect(settings: Settings) -> dict[str, Any]:
    """Read the clusters from EC2 and build the inventory."""
    access = EC2.HostAccess(
        cluster=settings.cluster,
        all_clusters=settings.all_clusters,
        ssh_user=settings.ssh_user,
        ssh_private_key_file=settings.ssh_private_key_file,
        ssh_address=settings.ssh_address,
    )
    with aws_errors(settings):
        return EC2.collect_inventory(ec2_client(settings), access)


# ---------------------------------------------------------------- cache


def cache_path(settings: Settings) -> Path:
    key = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:16]
    return Path(settings.cache_dir).expanduser() / f"ec2_segway-{key}.json"


def open_private(path: Path) -> Any | None:
    """path opened for reading if it is a regular file (not a link) of the current user
    that no one else may read or write; None (with a warning) otherwise, or if absent."""
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        return None
    except OSError as exc:
        LOG.warning("ignoring cache %s (%s); asking EC2", path, exc.strerror or exc)
        return None
    info = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(info.st_mode):
        problem = "it is not a regular file"
    elif info.st_uid != os.geteuid():
        problem = f"it belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})"
    elif stat.S_IMODE(info.st_mode) & 0o077:
        problem = f"its mode is {stat.S_IMODE(info.st_mode):04o}, not 0600"
    if problem:
        os.close(fd)
        LOG.warning("ignoring cache %s: %s; asking EC2", path, problem)
        return None
    return os.fdopen(fd, encoding="utf-8")


def read_cache(path: Path, ttl: int, now: float) -> dict[str, Any] | None:
    """The cached inventory if the cache file is trustworthy, whole and fresh, else None."""
    handle = open_private(path)
    if handle is None:
        return None
    try:
        with handle:
            data = json.load(handle)
        if not isinstance(data, dict) or not isinstance(data.get("created"), int | float):
            raise TypeError("not an object with a creation time")
        created = float(data["created"])
        inventory = data.get("inventory")
        if not isinstance(inventory, dict) or not isinstance(inventory.get("_meta"), dict):
            raise TypeError("no inventory in it")
    except (OSError, ValueError, TypeError) as exc:
        LOG.warning("ignoring corrupt cache %s (%s); asking EC2", path, exc)
        return None
    age = now - created
    if not 0 <= age < ttl:
        LOG.debug("cache %s is %.0f s old (TTL %d s)", path, age, ttl)
        return None
    LOG.debug("using cache %s (%.0f s old)", path, age)
    return inventory


def write_cache(path: Path, inventory: Mapping[str, Any], now: float) -> None:
    """Write the cache atomically, mode 0600, in a directory made with mode 0700."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ec2_segway-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"created": now, "inventory": inventory}, handle)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        LOG.warning("cannot write cache %s: %s", path, exc)


def load_inventory(settings: Settings, refresh: bool) -> dict[str, Any]:
    if settings.cache_ttl == 0:
        return collect(settings)
    path = cache_path(settings)
    now = time.time()
    if not refresh:
        cached = read_cache(path, settings.cache_ttl, now)
        if cached is not None:
            return cached
    inventory = collect(settings)
    write_cache(path, inventory, now)
    return inventory


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ansible dynamic inventory of segway.cluster clusters on EC2.",
        epilog="Environment: SEGWAY_CLUSTER, AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, "
        "SEGWAY_INVENTORY_CACHE_TTL, SEGWAY_INVENTORY_CONFIG (see the module docstring).",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="print every group and host")
    mode.add_argument("--host", metavar="HOST", help="print one host's variables")
    parser.add_argument(
        "--cluster",
        help="only this cluster; 'all' lists every cluster, each in its own cluster_<name> group",
    )
    parser.add_argument("--region", help="AWS region (default: AWS_REGION or us-east-1)")
    parser.add_argument("--cache-ttl", help="seconds a cached answer stays valid (0: no cache)")
    parser.add_argument(
        "--refresh-cache", action="store_true", help="ask EC2 even if the cache is fresh"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log AWS calls on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="ec2_segway: %(levelname)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        env = os.environ
        config_path = Path(
            env.get("SEGWAY_INVENTORY_CONFIG")
            or Path(__file__).resolve().with_name("ec2_segway.ini")
        )
        settings = resolve_settings(args, env, read_config(config_path))
        inventory = load_inventory(settings, args.refresh_cache)
    except InventoryError as exc:
        LOG.error("%s", exc)
        return 1
    if args.host is not None:
        hostvars = inventory["_meta"]["hostvars"]
        if args.host not in hostvars:
            LOG.error("no running host named %s", args.host)
            return 1
        json.dump(hostvars[args.host], sys.stdout, indent=1, sort_keys=True)
    else:
        json.dump(inventory, sys.stdout, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
