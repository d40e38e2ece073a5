"""Submit one job through DRMAA the way Segway does, wait for it, print what happened.

Usage: python3 drmaa_submit.py NATIVE_SPEC OUTPUT_FILE
Runs `hostname` on an exec host with the given native specification (Segway's
`-l mem_requested=...,h_vmem=...` resource string), writing its output to OUTPUT_FILE,
and prints one JSON line: the job id, exit status and the output file's content.
"""

import json
import os
import sys

import drmaa

TIMEOUT_SECONDS = 300


def main() -> int:
    native, output = sys.argv[1], sys.argv[2]
    if os.path.exists(output):
        os.unlink(output)  # Grid Engine appends to an existing output file
    with drmaa.Session() as session:
        template = session.createJobTemplate()
        template.remoteCommand = "/bin/hostname"
        template.nativeSpecification = f"-w n -j n {native}"
        template.outputPath = f":{output}"
        template.joinFiles = True
        job_id = session.runJob(template)
        info = session.wait(job_id, TIMEOUT_SECONDS)
        session.deleteJobTemplate(template)
    with open(output, encoding="utf-8") as stream:
        text = stream.read().strip()
    print(
        json.dumps(
            {
                "job_id": job_id,
                "exit_status": info.exitStatus,
                "has_exited": info.hasExited,
                "output": text,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
