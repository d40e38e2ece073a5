"""A GMTK stand-in archive: a release-shaped tarball (one configure script, a Makefile it
writes, `make install` into --prefix) whose only program is a `gmtkTriangulate` that
prints a GMTK version line, as segway_env_versions.py reads it.

It exercises everything roles/segway_env does around a GMTK build (copy from the
controller, checksum, unpack, configure with the role's arguments, make, make install,
the marker of the archive it was built from, the skip when the marker matches) in
seconds, where GMTK 1.4.4 itself compiles for about 13 minutes on 2 cores. It is not
GMTK: `segway train` cannot run on it. The real build is `make segway-demo`.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

VERSION_LINE = "gmtkTriangulate (GMTK) 1.4.4-standin"

CONFIGURE = """#!/bin/sh
# GMTK stand-in (tests/ec2/gmtk_standin.py): takes GMTK's configure arguments, keeps --prefix.
prefix=/usr/local
for arg in "$@"; do
  case "$arg" in --prefix=*) prefix="${arg#--prefix=}" ;; esac
done
printf 'all:\\n\\t@echo "GMTK stand-in: nothing to compile"\\n' > Makefile
printf 'install:\\n\\tmkdir -p %s/bin\\n' "$prefix" >> Makefile
printf '\\tinstall -m 0755 gmtkTriangulate %s/bin/gmtkTriangulate\\n' "$prefix" >> Makefile
"""

TRIANGULATE = f"""#!/bin/sh
echo "{VERSION_LINE}"
"""


def make_archive(directory: Path, name: str = "gmtk-standin.tar.gz") -> tuple[Path, str]:
    """Write the archive into directory; return its path and its sha256 (hex)."""
    path = directory / name
    with tarfile.open(path, "w:gz") as archive:
        for member, text in (("configure", CONFIGURE), ("gmtkTriangulate", TRIANGULATE)):
            data = text.encode()
            info = tarfile.TarInfo(f"gmtk-standin/{member}")
            info.size = len(data)
            info.mode = 0o755
            archive.addfile(info, io.BytesIO(data))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()
