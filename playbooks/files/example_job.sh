#!/bin/bash
# The example job playbooks/example_job.yml submits: where it ran, the memory limit Grid
# Engine put on it (Segway's h_vmem request becomes the job's address-space limit), and
# a small computation done on the compute node.
echo "host: $(hostname)"
echo "job: ${JOB_ID:-none} as $(id -un) in $(pwd)"
echo "memory limit (ulimit -v): $(ulimit -v) KiB"
echo "sum of 1..1000000: $(python3 -c 'print(sum(range(1, 1000001)))')"
