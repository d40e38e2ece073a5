#!/usr/bin/env bash
# Ensure a Docker engine answers on this machine.
#
# 1. A running engine (docker info answers) is used as it is.
# 2. Otherwise, as root: install Debian's docker.io (and the tools the image
#    build needs), start dockerd in the background, wait until it answers.
# 3. Where neither is possible, exit non-zero with a message saying why.
#
# Idempotent: a second call with the engine up returns in well under a second.
set -euo pipefail

log() { printf 'ensure_docker: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_SECONDS=${DOCKER_WAIT_SECONDS:-90}

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  log "docker engine already answering"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "no Docker engine answers and this is not root: start dockerd yourself, or run 'sudo $0'"

if ! command -v dockerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "no Docker engine and no apt-get to install Debian's docker.io: install a Docker engine by hand"
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed: the Debian mirror is not reachable"
  apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null \
    || die "apt-get install docker.io failed"
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: $DOCKERD_LOG)"
  # setsid: the engine must outlive the shell (and make job) that started it.
  setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
fi

for _ in $(seq "$WAIT_SECONDS"); do
  if docker info >/dev/null 2>&1; then
    log "docker engine answering"
    exit 0
  fi
  sleep 1
done
tail -n 20 "$DOCKERD_LOG" >&2 || true
die "dockerd did not answer within ${WAIT_SECONDS}s (see $DOCKERD_LOG above)"
