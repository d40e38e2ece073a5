"""Offline stand-in for the get-pip script ansible-test downloads to bootstrap pip.

ansible-test creates a virtual environment without pip for each sanity test and fetches
https://ci-files.testing.ansible.com/ansible-test/get-pip-VERSION.py to put pip into it.
That host is unreachable from the CI machines (they reach PyPI only), so `make sanity`
puts this file where ansible-test caches that script, in a HOME of its own. It does what
the script does: install pip (from Python's bundled ensurepip, then the requested pip
and packages from the package index), taking the same arguments.
"""

from __future__ import annotations

import subprocess
import sys

# get-pip.py's own options; pip install does not know them.
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def main() -> None:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", *args], check=True)


if __name__ == "__main__":
    main()
