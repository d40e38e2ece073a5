"""Print, as one JSON object, the versions a node actually has installed.

Run by roles/segway_env with the environment's own python, on every node:

    python segway_env_versions.py --bin-dir DIR [--bin-dir DIR ...] --sge-root ROOT

Keys: python, segway, genomedata, segtools (from the packages' metadata, as this python
imports them), gmtk (`gmtkTriangulate -version`, as Segway itself reads it), gridengine
(`qstat -help`). A package or program that is absent is "not installed"; one that is
present but cannot run (a missing shared library) is reported under "errors".
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import subprocess
import sys
from importlib import metadata

NOT_INSTALLED = "not installed"
PACKAGES = ("segway", "genomedata", "segtools")
GMTK_PROBE = "gmtkTriangulate"
TIMEOUT_SECONDS = 60


def package_version(name: str, errors: dict[str, str]) -> str:
    """Version of an importable package: its metadata, else its __version__."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if getattr(exc, "name", None) != name:
            errors[name] = f"import {name}: {exc}"
        return NOT_INSTALLED
    except Exception as exc:  # any import failure is reported, not raised
        errors[name] = f"import {name}: {type(exc).__name__}: {exc}"
        return NOT_INSTALLED
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "unknown"))


def run_first_line(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
        env=env,
    )
    lines = (result.stdout or result.stderr).strip().splitlines()
    return result.returncode, (lines[0] if lines else "")


def gmtk_version(bin_dirs: list[str], errors: dict[str, str]) -> str:
    """GMTK's version as `gmtkTriangulate -version` prints it: 'gmtkTriangulate (GMTK) 1.4.4'."""
    for directory in bin_dirs:
        probe = os.path.join(directory, GMTK_PROBE)
        if os.access(probe, os.X_OK):
            try:
                code, line = run_first_line([probe, "-version"])
            except (OSError, subprocess.SubprocessError) as exc:
                errors["gmtk"] = f"{probe} -version: {exc}"
                return NOT_INSTALLED
            words = line.split()
            if code != 0 or "(GMTK)" not in words:
                errors["gmtk"] = f"{probe} -version exited {code}: {line}"
                return NOT_INSTALLED
            return words[-1]
    return NOT_INSTALLED


def gridengine_version(sge_root: str) -> str:
    """'8.1.9' from the first line of `qstat -help` ('SGE 8.1.9')."""
    for qstat in sorted(glob.glob(os.path.join(sge_root, "bin", "*", "qstat"))):
        if os.access(qstat, os.X_OK):
            env = dict(os.environ, SGE_ROOT=sge_root)
            try:
                _rc, line = run_first_line([qstat, "-help"], env=env)
            except (OSError, subprocess.SubprocessError):
                continue
            words = line.split()
            if len(words) >= 2:  # noqa: PLR2004 - "SGE 8.1.9"
                return words[1]
    return NOT_INSTALLED


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", action="append", default=[], dest="bin_dirs")
    parser.add_argument("--sge-root", default="/var/lib/gridengine")
    args = parser.parse_args()
    errors: dict[str, str] = {}
    versions = {name: package_version(name, errors) for name in PACKAGES}
    versions["python"] = ".".join(str(part) for part in sys.version_info[:3])
    versions["gmtk"] = gmtk_version(args.bin_dirs, errors)
    versions["gridengine"] = gridengine_version(args.sge_root)
    versions["errors"] = errors
    print(json.dumps(versions, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
