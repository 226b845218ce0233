#!/usr/bin/env bash
# Rendered by deploy: deployment "gpt-oss-120b", node "local", plan d4f413e5fb16.
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

docker_serve_0() {
  docker run --detach \
    --name gpt-oss-120b-serve-0 \
    --restart unless-stopped \
    --label ai.deploy.deployment=gpt-oss-120b \
    --label ai.deploy.node=local \
    --label ai.deploy.plan-hash=d4f413e5fb16 \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=serve \
    --label ai.deploy.service=serve-0 \
    --label ai.deploy.spec-hash=963cd0fb6b59 \
    --publish 127.0.0.1:8000:8000 \
    --ipc host \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --gpus '"device=0"' \
    --volume "${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface" \
    --volume "$HOME"/.cache/deploy-jit/vllm/vllm:/root/.cache/vllm \
    --volume "$HOME"/.cache/deploy-jit/vllm/flashinfer:/root/.cache/flashinfer \
    --volume "$HOME"/.cache/deploy-jit/vllm/triton:/root/.triton \
    --env HF_TOKEN \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:8000/health 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:8000/health || wget -q -O /dev/null http://127.0.0.1:8000/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 660s \
    --entrypoint vllm \
    vllm/vllm-openai:v0.33.0 serve openai/gpt-oss-120b \
    --served-model-name gpt-oss-120b \
    --host 0.0.0.0 \
    --port 8000 \
    --tensor-parallel-size 1 \
    --max-model-len 32768 \
    --gpu-memory-utilization 0.9 \
    --max-num-batched-tokens 2048 \
    --max-cudagraph-capture-size 2048 \
    --stream-interval 20
}

bare_serve_0() {
  exec env \
    CUDA_VISIBLE_DEVICES=0 \
    vllm serve openai/gpt-oss-120b \
    --served-model-name gpt-oss-120b \
    --host 127.0.0.1 \
    --port 8000 \
    --tensor-parallel-size 1 \
    --max-model-len 32768 \
    --gpu-memory-utilization 0.9 \
    --max-num-batched-tokens 2048 \
    --max-cudagraph-capture-size 2048 \
    --stream-interval 20
}

case "${1:-docker}" in
  docker)
    docker_serve_0
    ;;
  bare)
    case "${2:-}" in
      serve-0) bare_serve_0 ;;
      *) echo "usage: $0 bare SERVICE (one of: serve-0)" >&2; exit 2 ;;
    esac
    ;;
  list)
    echo serve-0
    ;;
  *) echo "usage: $0 [docker | bare SERVICE | list]" >&2; exit 2 ;;
esac
