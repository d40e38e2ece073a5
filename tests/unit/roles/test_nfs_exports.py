"""roles/nfs renders one export list for the kernel server and for NFS-Ganesha.

The test machines' kernel has no nfsd, so the kernel server's /etc/exports is checked
here: a real ansible-playbook run (connection local, nothing outside a temporary
directory is touched) publishes each node's address with the role's own address.yml,
loads the role's defaults and vars, and renders both templates. The assertions are the
contract: only the compute nodes' addresses, never `*`, root squashed on every export,
the shared build path read-only and the rest read-write, the options asked for, and the
list follows the inventory as nodes come and go. (molecule's verify_storage.yml checks
the same rules over the wire, against a running NFS-Ganesha.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "nfs"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

ADDRESSES = {
    "master": "10.0.1.10",
    "node001": "10.0.1.11",
    "node002": "10.0.1.12",
    "node003": "10.0.1.13",
}
VOLUMES = [
    {"name": "data", "volume_id": "vol-0123456789abcdef0", "mount_point": "/data"},
    {"name": "scratch", "device": "/dev/sdg", "mount_point": "/scratch", "share": False},
    {"name": "results", "device": "/dev/sdh", "mount_point": "/results", "share": True},
]

PLAYBOOK = """
- name: Every node publishes its address
  hosts: all
  gather_facts: false
  tasks:
    - name: Publish
      ansible.builtin.include_role:
        name: segway.cluster.nfs
        tasks_from: address.yml

- name: The master renders both export lists
  hosts: master
  gather_facts: false
  tasks:
    - name: Load the role's defaults and vars
      ansible.builtin.include_vars:
        file: "{{ item }}"
      loop: ["ROLE/defaults/main.yml", "ROLE/vars/main.yml"]
    - name: Render
      ansible.builtin.template:
        src: "ROLE/templates/{{ item }}.j2"
        dest: "OUT/{{ item }}"
        mode: "0644"
      loop: [exports, ganesha.conf, ganesha-exports.conf]
    - name: Write the compute nodes' mount options of each path (tasks/client.yml)
      ansible.builtin.copy:
        dest: "OUT/mounts.json"
        content: "{{ nfs_client_path_options | default({}) | to_json }}"
        mode: "0644"
"""


def render(tmp_path: Path, compute: list[str], extra: dict | None = None) -> dict[str, str]:
    out = tmp_path / "out"
    out.mkdir()
    hosts = {"master": {"master": host_vars("master")}}
    hosts["compute"] = {name: host_vars(name) for name in compute}
    inventory = {group: {"hosts": members} for group, members in hosts.items()}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    playbook = PLAYBOOK.replace("ROLE", str(ROLE)).replace("OUT", str(out))
    (tmp_path / "render.yml").write_text(playbook)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(tmp_path / "inventory.json"),
            str(tmp_path / "render.yml"),
            "-e",
            # The master's volumes, as playbooks/configure.yml passes ebs_mount_volumes (an
            # extra var: the render play loads the role's defaults with include_vars).
            json.dumps({"nfs_server_volumes": VOLUMES, **(extra or {})}),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = {path.name: path.read_text() for path in out.iterdir()}
    files["mounts"] = json.loads(files.pop("mounts.json"))
    return files


def host_vars(name: str, **more) -> dict:
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        # As playbooks/configure.yml passes roles/common's common_private_ip.
        "nfs_node_address": ADDRESSES[name],
        **more,
    }


def export_lines(text: str) -> dict[str, list[tuple[str, str]]]:
    """/etc/exports as {path: [(client, options), ...]}, comments skipped."""
    lines = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, *clients = line.split()
        lines[path] = [re.fullmatch(r"([^(]+)\((.*)\)", c).groups() for c in clients]
    return lines


def ganesha_exports(text: str) -> dict[str, dict[str, str]]:
    """Each EXPORT block's Path, Export_Id and CLIENT Clients."""
    blocks = {}
    for block in re.findall(r"(?ms)^EXPORT \{.*?^\}", text):
        path = re.search(r'Path = "([^"]+)";', block).group(1)
        clients = re.search(r"Clients = ([^;]+);", block)
        blocks[path] = {
            "id": re.search(r"Export_Id = (\d+);", block).group(1),
            "pseudo": re.search(r'Pseudo = "([^"]+)";', block).group(1),
            "clients": clients.group(1) if clients else "",
            "access": re.findall(r"Access_Type = (\w+);", block),
            "squash": re.findall(r"Squash = (\w+);", block),
        }
    return blocks


# The build path: written on the master only (roles/segway_env), read by the nodes.
READ_ONLY = "/segway-build"


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory) -> dict[str, str]:
    return render(tmp_path_factory.mktemp("two"), ["node001", "node002"])


def test_kernel_exports_home_and_shared_volumes_to_compute_nodes_only(two_nodes) -> None:
    text = two_nodes["exports"]
    assert "*" not in text.replace("`*`", "")
    exports = export_lines(text)
    # /home, the shared volumes (not the one with share: false) and Segway's build path.
    assert sorted(exports) == ["/data", "/home", "/results", "/segway-build"]
    for path, clients in exports.items():
        assert [c for c, _ in clients] == [ADDRESSES["node001"], ADDRESSES["node002"]], path
        assert ADDRESSES["master"] not in dict(clients)
        access = "ro" if path == READ_ONLY else "rw"
        for _, options in clients:
            assert options.split(",") == [access, "sync", "root_squash", "no_subtree_check"]
    # Root on a compute node must never be root on the master's files.
    assert "no_root_squash" not in text


def test_kernel_read_only_build_path_and_read_write_data(two_nodes) -> None:
    exports = export_lines(two_nodes["exports"])
    assert {o.split(",")[0] for _, o in exports["/segway-build"]} == {"ro"}
    for path in ("/home", "/data", "/results"):
        assert {o.split(",")[0] for _, o in exports[path]} == {"rw"}, path


def test_ganesha_exports_the_same_list(two_nodes) -> None:
    blocks = ganesha_exports(two_nodes["ganesha-exports.conf"])
    assert sorted(blocks) == ["/data", "/home", "/results", "/segway-build"]
    assert len({b["id"] for b in blocks.values()}) == 4
    for path, block in blocks.items():
        assert block["pseudo"] == path
        assert block["clients"] == f"{ADDRESSES['node001']}, {ADDRESSES['node002']}"
        # Nobody by default; the listed clients only, read-only for the build path.
        assert block["access"] == ["None", "RO" if path == READ_ONLY else "RW"], path
        # Root squashed for everybody, in the export and in the CLIENT block.
        assert block["squash"] == ["Root_Squash", "Root_Squash"], path
    assert "no_root_squash" not in two_nodes["ganesha-exports.conf"].lower()
    assert "*" not in two_nodes["ganesha-exports.conf"].replace("`*`", "")
    conf = two_nodes["ganesha.conf"]
    assert "Protocols = 4;" in conf
    assert "Grace_Period = 90;" in conf
    assert '%include "/etc/ganesha/segway-exports.conf"' in conf


def test_async_and_a_node_added(tmp_path) -> None:
    files = render(tmp_path, ["node001", "node002", "node003"], {"nfs_sync": False})
    exports = export_lines(files["exports"])
    for clients in exports.values():
        assert [c for c, _ in clients] == [ADDRESSES[n] for n in ("node001", "node002", "node003")]
        assert all(o.split(",")[1] == "async" for _, o in clients)
    assert (
        ADDRESSES["node003"] in ganesha_exports(files["ganesha-exports.conf"])["/home"]["clients"]
    )


def test_removed_node_leaves_the_exports(tmp_path, two_nodes) -> None:
    files = render(tmp_path, ["node001", "node002"], {"nfs_remove_hosts": ["node002"]})
    for clients in export_lines(files["exports"]).values():
        assert [c for c, _ in clients] == [ADDRESSES["node001"]]
    # The ids of the remaining exports do not move.
    before = {p: b["id"] for p, b in ganesha_exports(two_nodes["ganesha-exports.conf"]).items()}
    after = {p: b["id"] for p, b in ganesha_exports(files["ganesha-exports.conf"]).items()}
    assert before == after


def test_no_compute_nodes_exports_nothing(tmp_path) -> None:
    """A path without clients in /etc/exports would be exported to the whole world."""
    files = render(tmp_path, [])
    assert export_lines(files["exports"]) == {}
    assert "not exported" in files["exports"]
    blocks = ganesha_exports(files["ganesha-exports.conf"])
    assert all(b["clients"] == "" and b["access"] == ["None"] for b in blocks.values())


def test_extra_subnet_and_own_export_list(tmp_path) -> None:
    files = render(
        tmp_path,
        ["node001"],
        {"nfs_extra_clients": ["10.0.2.0/24"], "nfs_exports": ["/home", "/srv/segway"]},
    )
    exports = export_lines(files["exports"])
    assert sorted(exports) == ["/home", "/srv/segway"]
    assert [c for c, _ in exports["/home"]] == [ADDRESSES["node001"], "10.0.2.0/24"]


def test_build_path_on_a_shared_volume_is_exported_once(tmp_path) -> None:
    # The seed's layout: Segway's build path is itself a shared EBS volume (configure.yml
    # passes segway_env_build_path as nfs_segway_build_path).
    files = render(tmp_path, ["node001"], {"nfs_segway_build_path": "/results"})
    exports = export_lines(files["exports"])
    assert sorted(exports) == ["/data", "/home", "/results"]
    blocks = ganesha_exports(files["ganesha-exports.conf"])
    assert sorted(blocks) == ["/data", "/home", "/results"]
    # That volume is the build path, so it is the one read-only export.
    access = {path: clients[0][1].split(",")[0] for path, clients in exports.items()}
    assert access == {"/data": "rw", "/home": "rw", "/results": "ro"}
    assert {p: b["access"][1] for p, b in blocks.items()} == {
        "/data": "RW",
        "/home": "RW",
        "/results": "RO",
    }


def test_compute_nodes_mount_the_build_path_read_only(two_nodes) -> None:
    mounts = two_nodes["mounts"]
    assert mounts["/segway-build"] == "ro,hard,_netdev,nofail"
    for path in ("/home", "/data", "/results"):
        assert mounts[path] == "rw,hard,_netdev,nofail", path


def test_everything_read_write_when_asked(tmp_path) -> None:
    files = render(tmp_path, ["node001"], {"nfs_read_only_exports": []})
    for path, clients in export_lines(files["exports"]).items():
        assert clients == [(ADDRESSES["node001"], "rw,sync,root_squash,no_subtree_check")], path
    blocks = ganesha_exports(files["ganesha-exports.conf"])
    assert {b["access"][1] for b in blocks.values()} == {"RW"}
    # Read-write or not, root stays squashed.
    assert {s for b in blocks.values() for s in b["squash"]} == {"Root_Squash"}
    assert set(files["mounts"].values()) == {"rw,hard,_netdev,nofail"}


def test_own_read_only_list_and_mount_options(tmp_path) -> None:
    files = render(
        tmp_path,
        ["node001"],
        {
            "nfs_read_only_exports": ["/data", "/segway-build"],
            "nfs_client_mount_options": ["hard", "noatime"],
        },
    )
    access = {p: c[0][1].split(",")[0] for p, c in export_lines(files["exports"]).items()}
    assert access == {"/data": "ro", "/home": "rw", "/results": "rw", "/segway-build": "ro"}
    # ro is added where the options named neither rw nor ro.
    assert files["mounts"]["/data"] == "ro,hard,noatime"
    assert files["mounts"]["/home"] == "hard,noatime"
