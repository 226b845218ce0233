#!/usr/bin/env bash
# Build the engine-simulator image `deploy-sim:latest` without any container registry.
#
# Two layers, so that a change to the simulator's code rebuilds in seconds:
#   1. deploy-sim-base:<suite>  a minimal Debian root filesystem made by debootstrap from the
#      apt mirror this machine already uses (python3, python3-aiohttp, ca-certificates),
#      imported with `docker import`. Built once, then reused.
#   2. deploy-sim:latest        the base plus orchestrator/sim, a minimal orchestrator package,
#      and shims named like the engine programs (vllm, sglang, vllm-router, smg, nginx,
#      python3 -m sglang.launch_server, python3 -m sglang_router.launch_router), so a service
#      whose command is the real engine's runs unchanged. Labelled with a hash of its inputs;
#      rebuilt only when that hash changes.
#
# Usage: docker/build-sim-image.sh [--force] [--rebuild-base]
# Environment: DEPLOY_SIM_SUITE (default: the host's Debian codename), DEPLOY_SIM_MIRROR
# (default: the host's apt mirror), DEPLOY_SIM_IMAGE (default deploy-sim:latest).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${DEPLOY_SIM_IMAGE:-deploy-sim:latest}"
HASH_LABEL="deploy.sim.source-hash"
BASE_LABEL="deploy.sim.base-recipe"
# Raise when the base's recipe (packages, stripping) changes, so existing bases are rebuilt.
BASE_RECIPE="2"
FORCE=0
REBUILD_BASE=0

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --rebuild-base) REBUILD_BASE=1; FORCE=1 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-sim-image: unknown argument '$arg' (use --force or --rebuild-base)" >&2; exit 2 ;;
  esac
done

say() { echo "build-sim-image: $*"; }
die() { echo "build-sim-image: error: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 \
  || die "docker is not installed; install it (Debian: apt-get install docker.io) and start dockerd"
docker info >/dev/null 2>&1 \
  || die "no Docker daemon is reachable; start dockerd (or check DOCKER_HOST and permissions)"

# --- inputs of the top layer ------------------------------------------------------------------
SIM_DIR="$REPO_ROOT/orchestrator/sim"
[ -f "$SIM_DIR/__main__.py" ] || die "$SIM_DIR/__main__.py is missing; run this from a full checkout"

source_hash() {
  # The simulator's sources and this script (which writes the shims) decide the top layer.
  (cd "$REPO_ROOT" && cat docker/build-sim-image.sh orchestrator/sim/*.py) | sha256sum | cut -c1-16
}

detect_suite() {
  if [ -n "${DEPLOY_SIM_SUITE:-}" ]; then echo "$DEPLOY_SIM_SUITE"; return; fi
  local codename=""
  if [ -r /etc/os-release ]; then
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  fi
  echo "${codename:-bookworm}"
}

detect_mirror() {
  # The first Debian archive URI that the host's apt lists for the suite itself (not -security).
  if [ -n "${DEPLOY_SIM_MIRROR:-}" ]; then echo "$DEPLOY_SIM_MIRROR"; return; fi
  local suite="$1" file uri=""
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    uri="$(awk -v suite="$suite" '
      BEGIN { RS=""; FS="\n" }
      {
        uris=""; suites=""; enabled=1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)    { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/)  { suites = " " $i " "; sub(/^ Suites:/, "", suites) }
          if ($i ~ /^Enabled:[ \t]*no/) { enabled = 0 }
        }
        if (enabled && suites ~ (" " suite " ")) { split(uris, u, " "); print u[1]; exit }
      }' "$file")"
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    uri="$(awk -v suite="$suite" '
      $1 == "deb" {
        n = 2; if ($2 ~ /^\[/) { while (n <= NF && $n !~ /\]$/) n++; n++ }
        if ($(n + 1) == suite) { print $n; exit }
      }' "$file")"
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo "http://deb.debian.org/debian"
}

SUITE="$(detect_suite)"
BASE_IMAGE="deploy-sim-base:$SUITE"
HASH="$(source_hash)"

if [ "$FORCE" = 0 ]; then
  current="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
  if [ "$current" = "$HASH" ]; then
    say "$IMAGE is up to date (sources $HASH)"
    exit 0
  fi
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/deploy-sim-build.XXXXXX")"
CONTAINER=""
cleanup() {
  [ -n "$CONTAINER" ] && docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- layer 1: the Debian base -----------------------------------------------------------------
base_recipe="$(docker image inspect --format "{{ index .Config.Labels \"$BASE_LABEL\" }}" "$BASE_IMAGE" 2>/dev/null || true)"
if [ "$REBUILD_BASE" = 1 ] || [ "$base_recipe" != "$BASE_RECIPE" ]; then
  command -v debootstrap >/dev/null 2>&1 \
    || die "debootstrap is not installed; install it (Debian: apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root; run this script as root (or with sudo)"
  MIRROR="$(detect_mirror "$SUITE")"
  ROOTFS="$WORK/rootfs"
  say "building $BASE_IMAGE: debootstrap $SUITE from $MIRROR (a few minutes; log in $WORK/debootstrap.log)"
  if ! debootstrap --variant=minbase --include=python3,python3-aiohttp,ca-certificates \
      "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -20 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (see the lines above); check that $MIRROR is reachable"
  fi
  say "stripping documentation, locales and package caches"
  rm -rf "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* \
    "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/log/* "$ROOTFS"/tmp/*
  # Keep the byte code that the packages' postinst compiled: without it every container
  # start would spend seconds compiling the standard library and aiohttp again.
  say "importing the root filesystem as $BASE_IMAGE"
  tar -C "$ROOTFS" -c . | docker import \
    --change "LABEL $BASE_LABEL=$BASE_RECIPE" \
    --change 'ENV PYTHONPATH=/opt/deploy' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'ENTRYPOINT ["python3","-m","orchestrator.sim"]' \
    --change 'WORKDIR /' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$ROOTFS"
else
  say "reusing $BASE_IMAGE"
fi

# --- layer 2: the simulator and the engine-named shims ------------------------------------------
STAGE="$WORK/stage"
mkdir -p "$STAGE/opt/deploy/orchestrator/sim" "$STAGE/opt/deploy/sglang" \
  "$STAGE/opt/deploy/sglang_router" "$STAGE/usr/local/bin"
cp "$SIM_DIR"/*.py "$STAGE/opt/deploy/orchestrator/sim/"
echo '"""The engine simulator only; the rest of deploy is not in this image."""' \
  >"$STAGE/opt/deploy/orchestrator/__init__.py"

for program in vllm sglang vllm-router smg nginx; do
  printf '#!/bin/sh\nexec python3 -m orchestrator.sim %s "$@"\n' "$program" \
    >"$STAGE/usr/local/bin/$program"
  chmod 755 "$STAGE/usr/local/bin/$program"
done
# `python3 -m sglang.launch_server ...` and `python3 -m sglang_router.launch_router ...`
echo '"""Simulator stand-in for the sglang package."""' >"$STAGE/opt/deploy/sglang/__init__.py"
echo '"""Simulator stand-in for the sglang_router package."""' \
  >"$STAGE/opt/deploy/sglang_router/__init__.py"
for pair in "sglang/launch_server:sglang.launch_server" \
            "sglang_router/launch_router:sglang_router.launch_router"; do
  path="${pair%%:*}"
  program="${pair##*:}"
  cat >"$STAGE/opt/deploy/$path.py" <<EOF
"""Simulator stand-in for \`python3 -m $program\`."""

import sys

from orchestrator.sim.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["python3", "-m", "$program", *sys.argv[1:]]))
EOF
done

say "building $IMAGE from $BASE_IMAGE (sources $HASH)"
# The container's one run compiles the simulator, so containers start without compiling it.
CONTAINER="$(docker create --network none --entrypoint python3 "$BASE_IMAGE" \
  -m compileall -q /opt/deploy)"
docker cp "$STAGE/opt/." "$CONTAINER:/opt/"
docker cp "$STAGE/usr/local/bin/." "$CONTAINER:/usr/local/bin/"
docker start -a "$CONTAINER" || die "compiling the simulator in the image failed"
docker commit \
  --change "LABEL $HASH_LABEL=$HASH" \
  --change 'ENV PYTHONPATH=/opt/deploy' \
  --change 'ENTRYPOINT ["python3","-m","orchestrator.sim"]' \
  --change 'CMD []' \
  "$CONTAINER" "$IMAGE" >/dev/null
docker rm -f "$CONTAINER" >/dev/null
CONTAINER=""

say "checking that the image starts"
docker run --rm --network none --entrypoint python3 "$IMAGE" -c 'import aiohttp, orchestrator.sim.server, sglang.launch_server' \
  || die "$IMAGE was built but cannot import the simulator"
say "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
