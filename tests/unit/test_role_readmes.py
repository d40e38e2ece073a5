"""Each role's README inputs table is the one docs/role_inputs.py writes from its spec.

argument_specs.yml is the one place an input is described; a README table left behind
after a spec changed tells users of inputs that are not there (or hides new ones)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_role_readmes_match_their_argument_specs() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "role_inputs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
