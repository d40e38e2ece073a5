"""`module_defaults: {group/segway.cluster.sge: ...}` reaches every SGE module.

meta/runtime.yml puts sge_complex and sge_object into the action group `sge`, so a role
names the Grid Engine installation once. This runs a real play (connection local, check
mode) whose only sge_root/sge_cell come from the group's defaults, against a stub `qconf`
in that sge_root that logs the SGE_ROOT/SGE_CELL it was run with and answers from the
captured qconf output in tests/unit/fixtures. SGE_ROOT and SGE_CELL are taken out of the
environment, so the values cannot come from the modules' environment fallback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "unit" / "fixtures"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
CELL = "groupcell"

STUB = """#!/bin/sh
echo "$SGE_ROOT $SGE_CELL $*" >> "{log}"
case "$1" in
  -sc) cat "{fixtures}/sge/qconf_sc_debian.txt" ;;
  -sm) id -un ;;
  -ssconf) cat "{fixtures}/sge_objects/qconf_ssconf.txt" ;;
  *) echo "stub qconf: unexpected $*" >&2; exit 1 ;;
esac
"""

PLAY = """
- name: Both SGE modules, with the installation set once for the group
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/segway.cluster.sge:
      sge_root: "{root}"
      sge_cell: {cell}
  tasks:
    - name: A complex (check mode)
      segway.cluster.sge_complex:
        name: zz_group_probe
        shortcut: zzgp
      check_mode: true
      register: complex

    - name: The scheduler configuration (check mode)
      segway.cluster.sge_object:
        kind: scheduler
        attributes:
          flush_submit_sec: 7
      check_mode: true
      register: scheduler

    - name: Write what the modules reported
      ansible.builtin.copy:
        content: "{{{{ {{'complex': complex.complex, 'scheduler': scheduler.object,
                       'changed': [complex.changed, scheduler.changed]}} | to_json }}}}"
        dest: "{result}"
        mode: "0600"
"""


def test_group_defaults_reach_both_modules(tmp_path: Path) -> None:
    root = tmp_path / "sge"
    log = tmp_path / "qconf.log"
    stub = root / "bin" / "lx-amd64" / "qconf"
    stub.parent.mkdir(parents=True)
    stub.write_text(STUB.format(log=log, fixtures=FIXTURES))
    stub.chmod(0o755)
    (root / CELL / "common").mkdir(parents=True)
    (root / CELL / "common" / "act_qmaster").write_text("master\n")
    result_file = tmp_path / "result.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(root=root, cell=CELL, result=result_file))

    env = {k: v for k, v in os.environ.items() if k not in ("SGE_ROOT", "SGE_CELL")}
    env.update(ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # Both modules ran qconf in the group's root, with the group's cell in SGE_CELL.
    calls = log.read_text().splitlines()
    options = [line.split()[2] for line in calls]
    assert {"-sc", "-ssconf"} <= set(options), calls
    assert all(line.startswith(f"{root} {CELL} ") for line in calls), calls
    # Check mode: both see a difference (a new complex, another flush_submit_sec), write none.
    assert not {"-Mc", "-mattr", "-Msconf"} & set(options), calls
    reported = json.loads(result_file.read_text())
    assert reported["changed"] == [True, True], reported
    assert reported["complex"]["name"] == "zz_group_probe", reported
    assert reported["scheduler"]["flush_submit_sec"] == "7", reported
