#!/bin/bash
# Install and start a one-machine Son of Grid Engine cluster (Debian's gridengine 8.1.9):
# sge_qmaster and sge_execd on this host, which is the admin host and the one exec host.
# Also creates the unprivileged user that the tests use to prove a non-manager is refused.
#
# Idempotent: on a machine where all of this is already done it only checks, in about a
# second. Must run as root (apt-get, init scripts). Needs Debian's package mirror.
#
#   setup_sge.sh                 install (apt-get update first), configure, start, wait
#   setup_sge.sh stop-qmaster    stop sge_qmaster and wait until it is gone (tests use it)
#
# Debian's init script cannot stop qmaster (it looks for a pid file qmaster never writes),
# so stopping goes through qmaster's own pid file in its spool directory.
set -euo pipefail

SGE_ROOT=/var/lib/gridengine
SGE_CELL=default
TEST_USER=${SGE_TEST_USER:-sgetest}
PACKAGES=(gridengine-master gridengine-exec gridengine-client)
HOST=$(hostname)
COMMON=$SGE_ROOT/$SGE_CELL/common
export SGE_ROOT SGE_CELL

log() { echo "setup_sge: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons); uid is $(id -u)"

installed() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || return 1
    done
}

install_packages() {
    installed && return 0
    log "installing ${PACKAGES[*]} (master $HOST, cell $SGE_CELL)"
    local pkg
    for pkg in gridengine-common gridengine-client gridengine-master; do
        printf '%s\n' \
            "$pkg shared/gridengineconfig boolean true" \
            "$pkg shared/gridenginecell string $SGE_CELL" \
            "$pkg shared/gridenginemaster string $HOST" | debconf-set-selections
    done
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${PACKAGES[@]}" >&2
    installed || die "packages did not install: ${PACKAGES[*]}"
}

qmaster_pidfile() {
    local spool
    spool=$(awk '$1 == "qmaster_spool_dir" {print $2}' "$COMMON/bootstrap")
    echo "${spool:-/var/spool/gridengine/qmaster}/qmaster.pid"
}

qmaster_pid() {
    local pidfile pid
    pidfile=$(qmaster_pidfile)
    [ -r "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sge_qmaster ] && echo "$pid"
}

# Pids of daemon NAME running on this machine itself: containers on the same kernel (e.g.
# molecule's) run their own sge_execd/sge_qmaster, which must be neither seen nor touched.
own_pids() {
    local pid ns
    ns=$(readlink /proc/self/ns/mnt)
    for pid in $(pgrep -x "$1"); do
        [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] && echo "$pid"
    done
    return 0
}

execd_running() { [ -n "$(own_pids sge_execd)" ]; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "timed out after ${seconds}s waiting for $what"
}

qmaster_gone() { ! qmaster_pid >/dev/null; }

stop_qmaster() {
    local pid
    pid=$(qmaster_pid) || return 0
    log "stopping sge_qmaster (pid $pid)"
    kill "$pid"
    wait_for 60 "sge_qmaster to exit" qmaster_gone
}

# /etc/hosts maps the hostname to 127.0.0.1, so qmaster sees its clients, and itself, as
# 'localhost': it refuses them, and a qmaster started that way (e.g. by the package's
# postinst) writes 'localhost' into act_qmaster. host_aliases must say that localhost is
# this host, and act_qmaster must name it; the daemons are restarted if either was wrong.
cell_needs_fix() {
    ! grep -qx "$HOST localhost" "$COMMON/host_aliases" 2>/dev/null ||
        [ "$(cat "$COMMON/act_qmaster")" != "$HOST" ]
}

fix_cell() {
    [ -f "$COMMON/act_qmaster" ] || die "$COMMON/act_qmaster is missing: the cell was not created"
    cell_needs_fix || return 0
    local master
    master=$(cat "$COMMON/act_qmaster")
    case "$master" in
        "$HOST" | localhost) ;;
        *) die "cell $SGE_CELL was made for host '$master', this is '$HOST'; purge the" \
            "gridengine packages, /var/lib/gridengine and /var/spool/gridengine, then re-run" ;;
    esac
    stop_execd
    stop_qmaster
    grep -qx "$HOST localhost" "$COMMON/host_aliases" 2>/dev/null ||
        echo "$HOST localhost" >>"$COMMON/host_aliases"
    echo "$HOST" >"$COMMON/act_qmaster"
    chown sgeadmin:sgeadmin "$COMMON/host_aliases" "$COMMON/act_qmaster"
    log "cell fixed: '$HOST localhost' in host_aliases, act_qmaster $HOST"
}

execd_gone() { ! execd_running; }

# An execd that never reached qmaster has written no pid file, so look it up by name.
stop_execd() {
    local pids
    pids=$(own_pids sge_execd)
    [ -n "$pids" ] || return 0
    log "stopping sge_execd (pid $pids)"
    # shellcheck disable=SC2086
    kill $pids
    wait_for 60 "sge_execd to exit" execd_gone
}

start_daemons() {
    if ! qmaster_pid >/dev/null; then
        log "starting sge_qmaster"
        /etc/init.d/gridengine-master start
    fi
    wait_for 60 "sge_qmaster to answer qconf" qconf -sm
    if ! execd_running; then
        log "starting sge_execd"
        /etc/init.d/gridengine-exec start
    fi
    # An execd on an admin host registers itself as an exec host.
    wait_for 60 "$HOST to be an exec host" exec_host_listed
    wait_for 60 "$HOST to report load" host_reports_load
}

exec_host_listed() { qconf -sel 2>/dev/null | grep -qx "$HOST"; }

host_reports_load() {
    qhost -h "$HOST" 2>/dev/null | awk -v h="$HOST" '$1 == h && $2 != "-" {found = 1} END {exit !found}'
}

ensure_test_user() {
    id "$TEST_USER" >/dev/null 2>&1 && return 0
    log "creating unprivileged user $TEST_USER"
    useradd --create-home --shell /bin/bash "$TEST_USER"
}

case "${1:-setup}" in
    setup)
        install_packages
        fix_cell
        start_daemons
        ensure_test_user
        log "ready: qmaster and execd on $HOST (SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL)"
        ;;
    stop-qmaster)
        stop_qmaster
        ;;
    *)
        die "usage: $0 [setup|stop-qmaster]"
        ;;
esac
