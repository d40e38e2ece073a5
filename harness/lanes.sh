#!/usr/bin/env bash
# make test's long checks in two lanes at once, as a single run of them leaves most of a
# 2-core machine idle (an ansible-playbook run keeps about one core busy, and much of a
# cluster test is waiting on SSH, systemd and daemons):
#   ec2:  pytest tests/ec2 (moto, the EC2 twin's containers on loop minors 512 and up)
#   rest: pytest on everything else (unit, playbooks, real Grid Engine, local clusters,
#         the README's commands), then every molecule scenario
# The lanes share nothing they could trip over: each pytest has its own --basetemp and no
# cache, the twin's loop devices and containers are its own (tests/ec2/ec2_twin.py), and
# every cluster test names its own cluster. Each line is prefixed with its lane; each lane
# ends with its exit code and time. Fails when either lane fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/.venv/bin:$PATH"
SCENARIOS=${SCENARIOS:-default}
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
  for s in $SCENARIOS; do molecule test -s "$s" || return 1; done
}

lane ec2 pytest -q -p no:cacheprovider --durations=25 --basetemp="$base/ec2" tests/ec2 &
ec2=$!
lane rest rest &
other=$!
wait "$ec2"; ec2_rc=$?
wait "$other"; rest_rc=$?
echo "lanes: ec2 exit $ec2_rc, rest exit $rest_rc"
[ "$ec2_rc" = 0 ] && [ "$rest_rc" = 0 ]
