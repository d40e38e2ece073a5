"""plugins/filter/node_roles.py: roles/nfs's export list, mount options and Ganesha ids."""

from __future__ import annotations

import hashlib

import jinja2
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.segway.cluster.plugins.filter.node_roles import (
    FilterModule,
    nfs_ganesha_ids,
    nfs_mount_options,
    nfs_shared_paths,
)

VOLUMES = [
    {"name": "results", "device": "/dev/sdh", "mount_point": "/results", "share": True},
    {"name": "data", "volume_id": "vol-0123456789abcdef0", "mount_point": "/data"},
    {"name": "scratch", "device": "/dev/sdg", "mount_point": "/scratch", "share": False},
    {"name": "odd", "device": "/dev/sdi", "mount_point": "/odd", "share": None},
]


def test_every_filter_name_reaches_its_function() -> None:
    assert FilterModule().filters() == {
        "nfs_shared_paths": nfs_shared_paths,
        "nfs_mount_options": nfs_mount_options,
        "nfs_ganesha_ids": nfs_ganesha_ids,
    }


def test_shared_paths_are_the_shared_volumes_sorted() -> None:
    # share left out means shared; false (or null) keeps the volume to the master.
    assert nfs_shared_paths(VOLUMES) == ["/data", "/results"]


def test_no_volumes_share_nothing() -> None:
    assert nfs_shared_paths([]) == []


@pytest.mark.parametrize("entry", [{"name": "x"}, {"mount_point": ""}, "/data"])
def test_shared_paths_need_a_mount_point(entry) -> None:
    with pytest.raises(AnsibleFilterError, match=r"nfs_server_volumes entries .* mount_point"):
        nfs_shared_paths([VOLUMES[0], entry])


def test_read_only_exports_are_mounted_ro_and_the_rest_as_given() -> None:
    options = ["rw", "hard", "_netdev", "nofail"]
    assert nfs_mount_options(["/home", "/segway-build", "/data"], ["/segway-build"], options) == {
        "/home": "rw,hard,_netdev,nofail",
        "/segway-build": "ro,hard,_netdev,nofail",
        "/data": "rw,hard,_netdev,nofail",
    }


def test_a_read_only_path_never_keeps_its_own_rw_or_ro() -> None:
    assert nfs_mount_options(["/b"], ["/b"], ["hard", "rw", "ro"]) == {"/b": "ro,hard"}


def test_read_only_paths_that_are_not_exported_are_ignored() -> None:
    assert nfs_mount_options(["/home"], ["/segway-build"], ["rw"]) == {"/home": "rw"}
    assert nfs_mount_options([], ["/segway-build"], ["rw"]) == {}


def test_ganesha_ids_come_from_the_path() -> None:
    ids = nfs_ganesha_ids(["/home", "/segway-build"])
    assert ids == {
        path: int(hashlib.sha1(path.encode()).hexdigest()[:4], 16)  # noqa: S324
        for path in ("/home", "/segway-build")
    }
    # Adding an export leaves the other ids alone.
    assert nfs_ganesha_ids(["/home", "/data", "/segway-build"])["/home"] == ids["/home"]
    assert all(0 <= i <= 0xFFFF for i in ids.values())


def test_given_ganesha_ids_win_even_for_paths_not_exported() -> None:
    assert nfs_ganesha_ids(["/home", "/data"], {"/data": 7, "/gone": 9}) == {
        "/home": nfs_ganesha_ids(["/home"])["/home"],
        "/data": 7,
        "/gone": 9,
    }
    assert nfs_ganesha_ids(["/home"], None) == nfs_ganesha_ids(["/home"], {})


def test_filters_render_through_jinja_as_the_role_calls_them() -> None:
    env = jinja2.Environment(autoescape=True)
    env.filters.update(FilterModule().filters())
    rendered = env.from_string(
        "{{ vols | nfs_shared_paths | join(' ') }}"
        "|{{ (['/home', '/b'] | nfs_mount_options(['/b'], ['rw', 'hard']))['/b'] }}"
        "|{{ (['/home'] | nfs_ganesha_ids({'/home': 3}))['/home'] }}"
    ).render(vols=VOLUMES)
    assert rendered == "/data /results|ro,hard|3"
