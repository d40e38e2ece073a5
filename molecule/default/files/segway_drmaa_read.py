"""Submit a job the way Segway does and have it read one value from a Genomedata archive.

Usage (as the cluster user, from a login shell, with the shared environment's python):

    python segway_drmaa_read.py submit ARCHIVE CHROM POSITION TRACK MEMORY_MIB WORKDIR
    python segway_drmaa_read.py read ARCHIVE CHROM POSITION TRACK

`submit` imports `segway.cluster`, which opens a DRMAA session and picks its driver
from the scheduler DRMAA reports (it must say "sge"), then builds the job template
exactly as Segway's queue_gmtk does: /usr/bin/env running a bash job script, the
submitter's environment and working directory, and Segway's JobTemplateFactory for
the first memory step, which wraps the job in segway-wrapper.sh (ulimit) and sets
Segway's native specification (-w n -j n -l mem_requested=...,h_vmem=...,h_stack=...).
It waits for the job and prints one JSON line: driver, native specification, job id,
exit status and the job's output (the `read` mode's JSON line).

`read` opens the archive with genomedata's Python API and prints the track's value at
CHROM:POSITION (0-based) and the host it ran on.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

TIMEOUT_SECONDS = 300
MIB = 1024 * 1024
SUBMIT_ARGS = 7
READ_ARGS = 5


def read(archive: str, chrom: str, position: int, track: str) -> dict:
    from genomedata import Genome  # noqa: PLC0415 - only the job needs genomedata

    with Genome(archive) as genome:
        value = float(genome[chrom][position, track])
    return {"host": socket.gethostname(), "value": value, "python": sys.executable}


def submit(  # noqa: PLR0917 - the command line, in order
    archive: str, chrom: str, position: int, track: str, memory_mib: int, workdir: str
) -> dict:
    import drmaa  # noqa: PLC0415
    import segway.cluster  # noqa: PLC0415 - opens a DRMAA session, picks the driver

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    output = work / "job.out"
    error = work / "job.err"
    for stale in (output, error):
        if stale.exists():
            stale.unlink()
    job_script = work / "job.sh"
    reader = Path(__file__).resolve()
    job_script.write_text(
        f'exec python "{reader}" read "{archive}" "{chrom}" {position} "{track}"\n',
        encoding="utf-8",
    )
    os.chdir(work)
    with drmaa.Session() as session:
        template = session.createJobTemplate()
        template.jobName = "segway-env-test"
        template.remoteCommand = "/usr/bin/env"  # segway.run.ENV_CMD
        template.args = [str(job_script)]
        template.jobEnvironment = dict(os.environ)
        template.blockEmail = True
        template.nativeSpecification = segway.cluster.make_native_spec()
        template.workingDirectory = str(work)
        factory = segway.cluster.JobTemplateFactory(
            template, 0, [memory_mib * MIB], str(output), str(error)
        )
        job_template = factory(0)
        native = job_template.nativeSpecification
        job_id = session.runJob(job_template)
        info = session.wait(job_id, TIMEOUT_SECONDS)
        factory.delete_job_template(session)
    text = output.read_text(encoding="utf-8").strip() if output.exists() else ""
    errors = error.read_text(encoding="utf-8").strip() if error.exists() else ""
    return {
        "driver": segway.cluster.driver_name,
        "native_spec": native,
        "job_id": job_id,
        "exit_status": info.exitStatus,
        "has_exited": info.hasExited,
        "output": text,
        "stderr": errors,
    }


def main(argv: list[str]) -> int:
    if len(argv) == SUBMIT_ARGS and argv[0] == "submit":
        result = submit(argv[1], argv[2], int(argv[3]), argv[4], int(argv[5]), argv[6])
    elif len(argv) == READ_ARGS and argv[0] == "read":
        result = read(argv[1], argv[2], int(argv[3]), argv[4])
    else:
        sys.stderr.write(__doc__)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
