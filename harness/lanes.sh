#!/usr/bin/env bash
# make test's long checks in two lanes at once, one per core of the 2-core CI machine: run
# one after the other they took 3833 s, in two lanes 2878 s (quiet, here). Both lanes are
# CPU-bound now (ansible-playbook and its module processes), so the next savings are
# fewer playbook runs; the split below keeps the lanes about equal:
#   ec2:  pytest tests/ec2 but EC2_IN_REST (moto, the EC2 twin's containers on loop
#         minors 512 and up)
#   rest: pytest on everything else (unit, playbooks, real Grid Engine, local clusters,
#         the README's commands) and EC2_IN_REST, then make molecule
# The lanes share nothing they could trip over: each pytest has its own --basetemp and no
# cache, the twin's loop devices and containers are its own (tests/ec2/ec2_twin.py), and
# every cluster test names its own cluster. Each line is prefixed with its lane; each lane
# ends with its exit code and time. Fails when either lane fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/.venv/bin:$PATH"
# moto-only files run in the rest lane, to even out the lanes' times.
EC2_IN_REST=(tests/ec2/test_ec2_teardown_safety.py)
base=$(mktemp -d "${TMPDIR:-/tmp}/segway-lanes.XXXXXX")
trap 'rm -rf "$base"' EXIT

lane() {
  local name=$1 started=$SECONDS rc
  shift
  "$@" 2>&1 | sed -u "s/^/[$name] /"
  rc=${PIPESTATUS[0]}
  echo "[$name] lane finished: exit $rc after $((SECONDS - started)) s"
  return "$rc"
}

rest() {
  pytest -q -p no:cacheprovider --durations=25 --basetemp="$base/rest" tests --ignore=tests/ec2 \
    || return 1
  pytest -q -p no:cacheprovider --durations=10 --basetemp="$base/rest-ec2" "${EC2_IN_REST[@]}" \
    || return 1
  make --no-print-directory molecule
}

lane ec2 pytest -q -p no:cacheprovider --durations=25 --basetemp="$base/ec2" \
  tests/ec2 "${EC2_IN_REST[@]/#/--ignore=}" &
ec2=$!
lane rest rest &
other=$!
wait "$ec2"; ec2_rc=$?
wait "$other"; rest_rc=$?
echo "lanes: ec2 exit $ec2_rc, rest exit $rest_rc"
[ "$ec2_rc" = 0 ] && [ "$rest_rc" = 0 ]
