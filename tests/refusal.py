"""The check every bad-input test of a playbook makes: the run failed, said each of
the expected texts, and no task reported a change."""

from __future__ import annotations

import re
import subprocess


def assert_refused(result: subprocess.CompletedProcess[str], expected: list[str]) -> str:
    """Assert the run was refused before any change; return its output, folded to one line."""
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, f"{text!r} not in output:\n{output}"
    assert re.search(r"changed=[1-9]", output) is None, output
    return output
