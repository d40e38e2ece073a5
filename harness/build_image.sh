#!/usr/bin/env bash
# Build (or reuse) the node base image every test cluster runs on.
#
#   segway-base:bookworm   Debian 12 minbase: `docker pull debian:bookworm` when a
#                          registry answers, else debootstrap from this machine's
#                          own apt mirror and `docker import`.
#   segway-node:<hash>     harness/Dockerfile on top: systemd, sshd, python3, sudo,
#                          iproute2 and the packages the roles install, pre-downloaded.
#   segway-node:bookworm   alias of the current hash; what molecule and
#                          provider=local start.
#
# The hash covers this script and everything under harness/image, so a second run
# with nothing changed only inspects two tags and returns in about a second.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
BASE_IMAGE=${SEGWAY_BASE_IMAGE:-segway-base:bookworm}
NODE_REPO=${SEGWAY_NODE_REPO:-segway-node}
NODE_ALIAS=${SEGWAY_NODE_IMAGE:-$NODE_REPO:bookworm}
SUITE=bookworm

log() { printf 'build_image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers: run harness/ensure_docker.sh first"

# Extra certificate authorities this machine trusts (e.g. a TLS-inspecting egress proxy
# in front of PyPI) are trusted inside the nodes too, so pip works there as it does here.
EXTRA_CA_DIR=${SEGWAY_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
extra_cas=()
if [ -d "$EXTRA_CA_DIR" ]; then
  while IFS= read -r -d '' f; do extra_cas+=("$f"); done \
    < <(find "$EXTRA_CA_DIR" -maxdepth 2 -name '*.crt' -type f -print0 | sort -z)
fi

hash=$(cat "$0" "$here"/image/* "${extra_cas[@]}" | sha256sum | cut -c1-12)
node_image="$NODE_REPO:$hash"

if docker image inspect "$node_image" >/dev/null 2>&1; then
  docker tag "$node_image" "$NODE_ALIAS"
  log "cached: $node_image (= $NODE_ALIAS)"
  exit 0
fi

# The host's own Debian mirror: first URI serving $SUITE in deb822 or one-line sources.
host_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '
      /^URIs:/ {uri=$2} /^Suites:/ {for (i=2;i<=NF;i++) if ($i==suite) ok=1}
      /^$/ {if (ok && uri ~ /debian\/?$/) {print uri; exit} ok=0; uri=""}
      END {if (ok && uri ~ /debian\/?$/) print uri}' "$f"
  done | head -n1
  awk -v suite="$SUITE" '$1=="deb" && $3==suite && $2 ~ /debian\/?$/ {print $2; exit}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1
  return 0
}

build_base_debootstrap() {
  local mirror rootfs security
  mirror=$(host_mirror | head -n1 || true)
  mirror=${SEGWAY_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}
  security=${mirror%/debian}/debian-security
  command -v debootstrap >/dev/null 2>&1 || {
    [ "$(id -u)" -eq 0 ] || die "debootstrap is missing and this is not root"
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
      || die "cannot install debootstrap"
  }
  rootfs=$(mktemp -d /var/tmp/segway-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap $SUITE from $mirror (a few minutes)"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$mirror" \
    >/var/tmp/segway-debootstrap.log 2>&1 \
    || { tail -n 30 /var/tmp/segway-debootstrap.log >&2; die "debootstrap failed (log: /var/tmp/segway-debootstrap.log)"; }
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
SOURCES
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
}

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if timeout 60 docker pull "debian:$SUITE" >/dev/null 2>&1; then
    log "pulled debian:$SUITE from a registry"
    docker tag "debian:$SUITE" "$BASE_IMAGE"
  else
    log "no registry answers: building the base from debootstrap"
    build_base_debootstrap
  fi
fi

log "building $node_image"
context=$(mktemp -d /var/tmp/segway-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
cp -r "$here"/image/. "$context"/
mkdir -p "$context/extra-ca"
[ "${#extra_cas[@]}" -eq 0 ] || cp "${extra_cas[@]}" "$context/extra-ca/"
docker build -q --build-arg "BASE=$BASE_IMAGE" -t "$node_image" "$context" >/dev/null \
  || die "docker build of $node_image failed (context: harness/image plus $EXTRA_CA_DIR/*.crt)"
rm -rf "$context"
trap - EXIT
docker tag "$node_image" "$NODE_ALIAS"
log "built $node_image (= $NODE_ALIAS)"
