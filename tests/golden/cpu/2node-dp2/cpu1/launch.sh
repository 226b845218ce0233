#!/usr/bin/env bash
# Rendered by deploy: deployment "2node-dp2", node "cpu1", plan e00e5df7fb20.
# The same services as compose.yaml beside this file, as plain commands.
#
#   ./launch.sh [docker]       start this node's services with `docker run`, in order
#   ./launch.sh bare SERVICE   run one service directly on this host, in the foreground
#   ./launch.sh list           list this node's services
#
# Secrets come from the environment (see ../.env.example); none is written here.
set -euo pipefail
# shellcheck disable=SC2034  # read by the services that mount a file beside this script
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"


wait_healthy() {
  # wait_healthy CONTAINER SECONDS: until Docker reports the container healthy.
  local deadline=$((SECONDS + $2)) status
  while true; do
    status="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null || true)"
    [ "$status" = healthy ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "launch.sh: $1 is not healthy after $2 s (status: ${status:-missing}); see: docker logs $1" >&2
      return 1
    fi
    sleep 5
  done
}

docker_serve_0_rank0() {
  docker run --detach \
    --name 2node-dp2-serve-0-rank0 \
    --restart no \
    --label ai.deploy.deployment=2node-dp2 \
    --label ai.deploy.node=cpu1 \
    --label ai.deploy.plan-hash=e00e5df7fb20 \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=serve \
    --label ai.deploy.service=serve-0-rank0 \
    --label ai.deploy.spec-hash=cc057962a7f9 \
    --network host \
    --ipc private \
    --shm-size 1g \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --volume "${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface" \
    --volume "$HOME"/.cache/deploy-jit/vllm/vllm:/root/.cache/vllm \
    --volume "$HOME"/.cache/deploy-jit/vllm/flashinfer:/root/.cache/flashinfer \
    --volume "$HOME"/.cache/deploy-jit/vllm/triton:/root/.triton \
    --env HF_TOKEN \
    --env VLLM_CPU_KVCACHE_SPACE=2 \
    --env VLLM_CPU_OMP_THREADS_BIND=0-7 \
    --env VLLM_HOST_IP=192.0.2.40 \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:8000/health 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:8000/health || wget -q -O /dev/null http://127.0.0.1:8000/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 720s \
    --entrypoint vllm \
    deploy-vllm-cpu:0.32.0 serve meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 8000 \
    --tensor-parallel-size 1 \
    --data-parallel-size 2 \
    --data-parallel-size-local 1 \
    --data-parallel-address 192.0.2.40 \
    --data-parallel-rpc-port 29550 \
    --max-model-len 8192
}

bare_serve_0_rank0() {
  exec env \
    VLLM_CPU_KVCACHE_SPACE=2 \
    VLLM_CPU_OMP_THREADS_BIND=0-7 \
    VLLM_HOST_IP=192.0.2.40 \
    vllm serve meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 8000 \
    --tensor-parallel-size 1 \
    --data-parallel-size 2 \
    --data-parallel-size-local 1 \
    --data-parallel-address 192.0.2.40 \
    --data-parallel-rpc-port 29550 \
    --max-model-len 8192
}

case "${1:-docker}" in
  docker)
    docker_serve_0_rank0
    ;;
  bare)
    case "${2:-}" in
      serve-0-rank0) bare_serve_0_rank0 ;;
      *) echo "usage: $0 bare SERVICE (one of: serve-0-rank0)" >&2; exit 2 ;;
    esac
    ;;
  list)
    echo serve-0-rank0
    ;;
  *) echo "usage: $0 [docker | bare SERVICE | list]" >&2; exit 2 ;;
esac
