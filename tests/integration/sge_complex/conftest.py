"""Fixtures for the sge_complex integration tests: a real Grid Engine on this machine.

The session fixture `sge` runs setup_sge.sh (installs Debian's gridengine 8.1.9 packages,
starts sge_qmaster and sge_execd, waits until this host is a registered exec host). It
needs root; without it the tests fail, they are never skipped. `Sge.run_module` runs the
module for real, through `ansible-playbook -c local`, and returns the task result.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SETUP = HERE / "setup_sge.sh"
SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
TEST_USER = "sgetest"  # created by setup_sge.sh; not an SGE manager
TEST_QUEUE = "zz_it.q"
MANAGED_PYTHON = "/usr/bin/python3"
# Complexes the tests create; removed (with their host and queue values) around each test.
TEST_COMPLEXES = ("mem_requested", "zz_it_other")
PROBE_PREFIX = "zz_probe"


def is_test_complex(name: str) -> bool:
    return name in TEST_COMPLEXES or name.startswith(PROBE_PREFIX)


def run(
    argv: list[str], check: bool = True, user: str | None = None
) -> subprocess.CompletedProcess:
    """Run a command with the cell's environment; as `user` (through runuser) if given,
    from `/`, which the user can read."""
    env = dict(os.environ, **SGE_ENV)
    if user:
        argv = [
            "runuser",
            "-u",
            user,
            "--",
            "env",
            *(f"{k}={v}" for k, v in SGE_ENV.items()),
            *argv,
        ]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        cwd="/" if user else None,
        timeout=300,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed (rc={proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc


def joined_config(text: str) -> dict[str, str]:
    """`qconf -se/-sq` output as key -> value, continuation lines joined (test-side parser)."""
    text = re.sub(r"\\\n\s*", "", text)
    return dict(line.split(None, 1) for line in text.splitlines() if line.strip())


@dataclass
class Sge:
    host: str
    tmp: Path
    probe_prefix: str = PROBE_PREFIX
    user: str = TEST_USER  # unprivileged, submits the tests' jobs
    queue: str = TEST_QUEUE

    # -- reading the real state
    def qconf(self, *args: str, check: bool = True) -> str:
        return run(["qconf", *args], check=check).stdout

    def config(self, *args: str) -> dict[str, str]:
        """What `qconf ARGS` shows of one object (-sq, -sp, -shgrp, -ssconf), as a dict."""
        return joined_config(self.qconf(*args))

    def qconf_rc(self, *args: str) -> int:
        return run(["qconf", *args], check=False).returncode

    def as_user(self, *argv: str) -> str:
        """Run a command (qsub, qstat) as the unprivileged test user; its output."""
        return run(list(argv), user=self.user).stdout

    def qdel(self, *job_ids: str) -> None:
        """Delete jobs by force, as root; whether they are gone is for the caller to check."""
        run(["qdel", "-f", *job_ids], check=False)

    def complex_list(self) -> str:
        return self.qconf("-sc")

    def complex_line(self, name: str) -> list[str] | None:
        for line in self.complex_list().splitlines():
            if line.split()[:1] == [name]:
                return line.split()
        return None

    def host_values(self, host: str) -> dict[str, str]:
        value = joined_config(self.qconf("-se", host))["complex_values"]
        return {} if value == "NONE" else dict(item.split("=", 1) for item in value.split(","))

    def qhost_resource(self, name: str, host: str | None = None) -> str | None:
        """What `qhost -F NAME` shows for a host (or `global`), e.g. 'hc:mem_requested=4.000G'."""
        out = run(["qhost", "-F", name, "-h", self.host]).stdout  # lists `global` too
        current = None
        for line in out.splitlines():
            if line and not line[0].isspace():
                current = line.split()[0]
            match = re.search(rf"\b(\w\w:{re.escape(name)}=\S+)", line)
            if match and current == (host or self.host):
                return match.group(1)
        return None

    # -- changing it directly, for test preparation
    def write_complex_list(self, text: str) -> None:
        path = self.tmp / "complexes.txt"
        path.write_text(text)
        self.qconf("-Mc", str(path), check=False)

    def add_complex(self, line: str) -> None:
        self.write_complex_list(self.complex_list() + line + "\n")
        assert self.complex_line(line.split(maxsplit=1)[0]) == line.split()

    def set_host_value(self, host: str, name: str, value: str) -> None:
        self.qconf("-mattr", "exechost", "complex_values", f"{name}={value}", host)

    def add_queue(self, name: str, complex_values: str) -> None:
        template = self.qconf("-sq")  # the queue template
        fixed = {
            "qname": name,
            "hostlist": self.host,
            "pe_list": "NONE",
            "complex_values": complex_values,
        }
        lines = [f"{key} {fixed.get(key, value)}" for key, value in joined_config(template).items()]
        path = self.tmp / "queue.txt"
        path.write_text("\n".join(lines) + "\n")
        self.qconf("-Aq", str(path))

    def cleanup(self) -> None:
        """Remove every trace of the tests: queue, host values, complexes."""
        if TEST_QUEUE in self.qconf("-sql", check=False).split():
            self.qconf("-dq", TEST_QUEUE)
        for host in ["global", self.host]:
            for name in self.host_values(host):
                if is_test_complex(name):
                    self.qconf("-dattr", "exechost", "complex_values", name, host)
        lines = self.complex_list().splitlines()
        kept = [line for line in lines if not is_test_complex(line.split()[0])]
        if kept != lines:
            self.write_complex_list("\n".join(kept) + "\n")
            left = [
                line
                for line in self.complex_list().splitlines()
                if is_test_complex(line.split()[0])
            ]
            assert not left, f"could not remove test complexes: {left}"

    # -- daemons
    def stop_qmaster(self) -> None:
        run([str(SETUP), "stop-qmaster"])

    def ensure_running(self) -> None:
        run([str(SETUP)])

    # -- the module, for real
    def run_module(
        self,
        args: dict,
        *,
        check: bool = False,
        diff: bool = False,
        become_user: str | None = None,
        environment: dict | None = None,
        fails: bool = False,
        module: str = "segway.cluster.sge_complex",
    ) -> dict:
        """Run a module (sge_complex by default) through ansible-playbook; its task result.

        The result must have failed if `fails` is true, and must not have otherwise.
        """
        task: dict = {module: args}
        if check:
            task["check_mode"] = True
        if diff:
            task["diff"] = True
        if become_user:
            task.update(become=True, become_method="su", become_user=become_user)
        if environment:
            task["environment"] = environment
        # Debian's own Python runs the module, as it would on a cluster node.
        play = [
            {
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "vars": {"ansible_python_interpreter": MANAGED_PYTHON},
                "tasks": [task],
            }
        ]
        playbook = self.tmp / "play.yml"
        playbook.write_text(json.dumps(play))
        env = dict(
            os.environ,
            ANSIBLE_STDOUT_CALLBACK="json",
            ANSIBLE_PIPELINING="1",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        )
        ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
        proc = subprocess.run(
            [str(ansible_playbook), "-i", "localhost,", str(playbook)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        try:
            report = json.loads(proc.stdout)
            result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError) as error:
            raise AssertionError(
                f"ansible-playbook gave no task result ({error}), "
                f"rc={proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            ) from error
        failed = bool(result.get("failed"))
        assert failed == fails, f"expected failed={fails}, got: {json.dumps(result, indent=1)}"
        assert proc.returncode == (2 if failed else 0), proc.stderr
        return result


@pytest.fixture(scope="session")
def sge(tmp_path_factory: pytest.TempPathFactory) -> Sge:
    if os.geteuid() != 0:
        pytest.fail(
            "the sge_complex integration tests need root: they install Debian's "
            "gridengine packages and start sge_qmaster/sge_execd on this machine "
            f"(run: sudo {sys.executable} -m pytest {HERE})",
            pytrace=False,
        )
    proc = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"{SETUP} failed (rc={proc.returncode}):\n{proc.stdout}{proc.stderr}", pytrace=False
        )
    host = run(["hostname"]).stdout.strip()
    assert host in run(["qconf", "-sel"]).stdout.split(), "this host is not an exec host"
    if not os.access(MANAGED_PYTHON, os.X_OK):
        pytest.fail(
            f"{MANAGED_PYTHON} (Debian's python3) is needed to run the module", pytrace=False
        )
    tmp = tmp_path_factory.mktemp("sge")
    tmp.chmod(0o755)
    return Sge(host=host, tmp=tmp)


@pytest.fixture
def clean(sge: Sge) -> Iterator[Sge]:
    """A cell without the tests' complexes, before and after the test."""
    sge.cleanup()
    yield sge
    sge.cleanup()
