"""Submit one job through DRMAA with Segway's resource request, wait, print what happened.

Usage: python3 example_drmaa.py JOB_SCRIPT OUTPUT_FILE [MEGABYTES]

Segway's SGE driver (segway/cluster/sge.py) submits every job through python's drmaa
with the native specification ``-w n -j n -l mem_requested=<N>M -l h_vmem=<N>M
-l h_stack=<stack>M``; this does the same for JOB_SCRIPT (run with bash in the
directory of OUTPUT_FILE, which must be on the shared /home), writes the job's output
to OUTPUT_FILE and prints one JSON line: the native specification, the job id, its
exit status and the output.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

import drmaa

TIMEOUT_SECONDS = 600
MIB = 1024 * 1024
MEGABYTES_ARG = 3
DEFAULT_MEGABYTES = 1024


def native_spec(megabytes: int) -> str:
    """Segway's request: -w n -j n, then mem_requested, h_vmem and h_stack in MiB."""
    stack = min(n for n in resource.getrlimit(resource.RLIMIT_STACK) if n > 0)
    stack_mib = -(-stack // MIB) if stack != resource.RLIM_INFINITY else 10
    return f"-w n -j n -l mem_requested={megabytes}M -l h_vmem={megabytes}M -l h_stack={stack_mib}M"


def main(argv: list[str]) -> int:
    script, output = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    megabytes = int(argv[3]) if len(argv) > MEGABYTES_ARG else DEFAULT_MEGABYTES
    output.unlink(missing_ok=True)  # Grid Engine appends to an existing output file
    spec = native_spec(megabytes)
    with drmaa.Session() as session:
        template = session.createJobTemplate()
        template.remoteCommand = "/bin/bash"
        template.args = [str(script)]
        template.jobName = "segway-example"
        template.workingDirectory = str(output.parent)
        template.nativeSpecification = spec
        template.outputPath = f":{output}"
        template.joinFiles = True
        job_id = session.runJob(template)
        info = session.wait(job_id, TIMEOUT_SECONDS)
        session.deleteJobTemplate(template)
    text = output.read_text(encoding="utf-8") if output.exists() else ""
    result = {
        "native_spec": spec,
        "job_id": job_id,
        "has_exited": bool(info.hasExited),
        "exit_status": info.exitStatus,
        "output": text.splitlines(),
        "drmaa_library": os.environ.get("DRMAA_LIBRARY_PATH", ""),
    }
    print(json.dumps(result))
    return 0 if info.hasExited and info.exitStatus == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
