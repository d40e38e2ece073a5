"""playbooks/put.yml and fetch.yml on the README's local cluster: rsync through the master.

Not a test module of its own: tests/readme/test_readme_commands.py calls
check_transfers() while the cluster of ``make cluster`` is up (a master, two compute
nodes, a data volume on /data), so that the test suite launches one local cluster for
both instead of two (the 45-minute budget of make test). In order:

1. put.yml uploads a tree (files, a subdirectory, a file of a few MB) to /data/... and
   to the cluster user's home; the master's copies are identical and belong to the
   cluster user; a re-run moves nothing and reports no change.
2. fetch.yml brings it back into a new directory here, identical; a re-run moves
   nothing; after one file changes on the cluster, only that file moves; a file gone
   from the cluster stays here unless delete=true.
3. An upload of a 200 MB file, slowed down with bwlimit, is cut off mid-way (its rsync
   killed); the re-run sends less than the whole file (rsync's literal data) and ends
   identical.
4. Bad inputs (a path outside the cluster user's reach, relative, with '..', a missing
   src) stop the run before any change, with a message naming the input and the value.

Needs rsync on this machine (make pytest installs it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from refusal import assert_refused

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
USER = "sgeadmin"
BIG_MB = 200
# The cluster the checks run on: check_transfers() sets it.
CLUSTER = {"name": ""}


def run(*argv: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def playbook_argv(name: str, extra: dict) -> list[str]:
    base = {"provider": "local", "cluster_name": CLUSTER["name"]}
    return [str(ANSIBLE_PLAYBOOK), f"playbooks/{name}", "-e", json.dumps({**base, **extra})]


ENV = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def playbook(name: str, extra: dict, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        playbook_argv(name, extra),
        cwd=REPO,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    if proc.returncode != 0:
        pytest.fail(f"{proc.args[:2]} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def changed(output: str) -> int:
    """The play recap's changed= summed over every host."""
    return sum(int(n) for n in re.findall(r"changed=(\d+)", output))


def stats(output: str) -> dict[str, int]:
    """rsync's --stats numbers as the play printed them (name -> first number)."""
    found = {}
    for name, value in re.findall(
        r"((?:Number|Total|Literal|Matched)[A-Za-z ]*): ([\d,]+)", output
    ):
        found[name.strip()] = int(value.replace(",", ""))
    return found


def items(output: str) -> list[str]:
    """The names of the items rsync itemized as changed (lines '  >f.st...... name')."""
    return re.findall(r"^\s*-?\s*'?\s+[<>ch.*][fdLDS][^ ]* (\S+?)'?$", output, flags=re.M)


def master(*argv: str, user: str = "root", check: bool = True) -> str:
    return run("docker", "exec", "-u", user, f"{CLUSTER['name']}-master", *argv, check=check).stdout


def remote_sums(path: str) -> dict[str, str]:
    """Relative path -> sha256 of every file under path on the master."""
    listing = 'cd "$1" && find . -type f ! -path "./.rsync-partial/*" -exec sha256sum {} +'
    out = master("sh", "-c", listing, "sh", path)
    return {
        name.removeprefix("./"): digest
        for digest, name in (ln.split(None, 1) for ln in out.splitlines())
    }


def local_sums(path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in path.rglob("*")
        if f.is_file()
    }


def remote_owners(path: str) -> set[str]:
    return set(master("find", path, "-printf", "%u:%g\n").split())


def make_tree(root: Path) -> Path:
    """Files, a subdirectory and a file of a few MB under root/tree."""
    tree = root / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "b.txt").write_text("beta\n" * 100)
    (tree / "sub" / "c.txt").write_text("gamma\n")
    (tree / "sub" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    return tree


def check_put_uploads_a_tree_once(tree: Path) -> None:
    files = local_sums(tree)
    # Trailing slash: the contents into dest. Without: dest/<name>.
    first = ok(playbook("put.yml", {"src": f"{tree}/", "dest": "/data/xfer/tree"}))
    assert changed(first) > 0, first
    assert stats(first)["Number of regular files transferred"] == len(files), first
    # rsync's output went to the progress log as it ran (tail -f), by default a file of
    # this cluster and direction under ~/.cache; the play said where before it started.
    log = Path.home() / ".cache" / "segway-cluster" / f"{CLUSTER['name']}-put.log"
    assert f"tail -f {log}" in first, first
    logged = log.read_text()
    moved = {
        line.split()[-1] for line in logged.splitlines() if line.startswith("transfer-item: <f")
    }
    assert moved == set(files), logged
    assert f"Number of regular files transferred: {len(files)}" in logged, logged
    assert "100%" in logged, logged
    ok(playbook("put.yml", {"src": str(tree), "dest": f"/home/{USER}/xfer"}))
    for where in ("/data/xfer/tree", f"/home/{USER}/xfer/tree"):
        assert remote_sums(where) == files, where
        assert remote_owners(where) == {f"{USER}:{USER}"}, where

    again = ok(playbook("put.yml", {"src": f"{tree}/", "dest": "/data/xfer/tree"}))
    assert changed(again) == 0, again
    assert stats(again)["Number of regular files transferred"] == 0, again
    assert stats(again)["Literal data"] == 0, again

    # A single file: dest is a directory all the same.
    ok(playbook("put.yml", {"src": str(tree / "a.txt"), "dest": f"/home/{USER}/xfer/single"}))
    assert remote_sums(f"/home/{USER}/xfer/single") == {"a.txt": files["a.txt"]}


def check_fetch_brings_it_back_and_moves_only_what_changed(tree: Path, tmp_path: Path) -> None:
    back = tmp_path / "back"
    first = ok(playbook("fetch.yml", {"src": "/data/xfer/tree/", "dest": str(back)}))
    assert changed(first) > 0, first
    assert local_sums(back) == local_sums(tree)

    again = ok(playbook("fetch.yml", {"src": "/data/xfer/tree/", "dest": str(back)}))
    assert changed(again) == 0, again
    assert stats(again)["Number of regular files transferred"] == 0, again

    master("sh", "-c", "echo more >> /data/xfer/tree/sub/c.txt", user=USER)
    one = ok(playbook("fetch.yml", {"src": "/data/xfer/tree/", "dest": str(back)}))
    assert changed(one) > 0, one
    assert stats(one)["Number of regular files transferred"] == 1, one
    assert items(one) == ["sub/c.txt"], one
    assert (back / "sub" / "c.txt").read_text() == "gamma\nmore\n"
    assert local_sums(back) == remote_sums("/data/xfer/tree")

    # A file gone from the cluster stays here unless delete=true.
    master("rm", "/data/xfer/tree/b.txt", user=USER)
    kept = ok(playbook("fetch.yml", {"src": "/data/xfer/tree/", "dest": str(back)}))
    assert stats(kept)["Number of deleted files"] == 0, kept
    assert (back / "b.txt").exists()
    pruned = ok(
        playbook("fetch.yml", {"src": "/data/xfer/tree/", "dest": str(back), "delete": True})
    )
    assert changed(pruned) > 0, pruned
    assert stats(pruned)["Number of deleted files"] == 1, pruned
    assert not (back / "b.txt").exists()
    assert local_sums(back) == remote_sums("/data/xfer/tree")


def rsync_of(arg: str) -> int | None:
    """The pid of the rsync (on this machine) one of whose arguments is arg."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0] == b"rsync" and arg.encode() in args:
            return int(proc.name)
    return None


def check_cut_off_upload_resumes(tmp_path: Path) -> None:
    src = tmp_path / "huge"
    src.mkdir()
    size = BIG_MB * 1024 * 1024
    with (src / "huge.bin").open("wb") as out:
        for _chunk in range(BIG_MB):
            out.write(os.urandom(1024 * 1024))
    # 20 MiB/s: about ten seconds for the whole file, cut after about four.
    slow = subprocess.Popen(
        playbook_argv("put.yml", {"src": f"{src}/", "dest": "/data/xfer/huge", "bwlimit": 20480}),
        cwd=REPO,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        pid = None
        while pid is None and time.monotonic() < deadline and slow.poll() is None:
            time.sleep(0.5)
            pid = rsync_of(f"{src}/")
        assert pid is not None, "rsync never started"
        time.sleep(4)
        os.kill(pid, signal.SIGTERM)
        cut_output = slow.communicate(timeout=300)[0]
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    assert slow.returncode != 0, cut_output
    kept = int(master("sh", "-c", "stat -c %s /data/xfer/huge/.rsync-partial/huge.bin || echo 0"))
    assert 0 < kept < size, cut_output

    resumed = ok(playbook("put.yml", {"src": f"{src}/", "dest": "/data/xfer/huge"}))
    numbers = stats(resumed)
    assert numbers["Literal data"] < size, resumed
    assert numbers["Matched data"] > 0, resumed
    assert numbers["Literal data"] + numbers["Matched data"] == size, resumed
    assert remote_sums("/data/xfer/huge") == local_sums(src)
    print(
        f"resume: {size} bytes, {kept} kept from the cut-off run; re-run sent literal "
        f"{numbers['Literal data']}, matched {numbers['Matched data']}, "
        f"total bytes sent {numbers['Total bytes sent']}"
    )


BAD_INPUTS = [
    pytest.param(
        "fetch.yml",
        {"src": "/etc/shadow"},
        ["src '/etc/shadow' is not allowed", f"/home/{USER}, /data"],
        id="fetch-etc-shadow",
    ),
    pytest.param("fetch.yml", {"src": "/root"}, ["src '/root' is not allowed"], id="fetch-root"),
    pytest.param(
        "fetch.yml",
        {"src": "data/xfer"},
        ["src 'data/xfer' is not allowed"],
        id="fetch-relative",
    ),
    pytest.param(
        "fetch.yml",
        {"src": f"/home/{USER}/../../etc"},
        [f"src '/home/{USER}/../../etc' is not allowed", "without '.' or '..' parts"],
        id="fetch-dotdot",
    ),
    pytest.param(
        "fetch.yml",
        {"src": "/data/xfer/no-such-file"},
        ["src '/data/xfer/no-such-file' is not allowed: it does not exist"],
        id="fetch-missing",
    ),
    pytest.param(
        "put.yml",
        {"dest": "/etc/xfer"},
        ["dest '/etc/xfer' is not allowed", "outside the cluster user's reach"],
        id="put-etc",
    ),
    pytest.param(
        "put.yml",
        {"progress_log": "progress.log"},
        ["progress_log 'progress.log' is not allowed", "an absolute path"],
        id="put-relative-progress-log",
    ),
    pytest.param(
        "put.yml",
        {"src": "/no/such/input"},
        ["src '/no/such/input' is not allowed: it does not exist"],
        id="put-missing-src",
    ),
]


def check_bad_input_is_refused(tmp_path: Path, name: str, extra: dict, expected: list[str]) -> None:
    defaults = (
        {"src": f"/home/{USER}", "dest": str(tmp_path / "out")}
        if name == "fetch.yml"
        else {"src": str(tmp_path), "dest": f"/home/{USER}/in"}
    )
    assert_refused(playbook(name, {**defaults, **extra}), expected)
    assert not (tmp_path / "out").exists()
    assert master("sh", "-c", "ls -d /etc/xfer /home/sgeadmin/in 2>/dev/null || true").strip() == ""


def check_transfers(cluster: str, tmp_path: Path) -> None:
    """Every check above, in order, on the running local cluster named cluster."""
    CLUSTER["name"] = cluster
    if shutil.which("rsync") is None:
        pytest.fail("rsync is not installed on this machine (make pytest installs it)")
    # A /data or /home kept from an earlier run starts from scratch.
    master("rm", "-rf", "/data/xfer", f"/home/{USER}/xfer", f"/home/{USER}/in")
    for part in ("put", "fetch", "cut"):
        (tmp_path / part).mkdir()
    tree = make_tree(tmp_path / "put")
    check_put_uploads_a_tree_once(tree)
    check_fetch_brings_it_back_and_moves_only_what_changed(tree, tmp_path / "fetch")
    check_cut_off_upload_resumes(tmp_path / "cut")
    for case in BAD_INPUTS:
        name, extra, expected = case.values
        where = tmp_path / f"bad-{case.id}"
        where.mkdir()
        check_bad_input_is_refused(where, name, extra, expected)
