#!/usr/bin/env bash
# Rendered by deploy: deployment "llama-3-1-70b", node "h100-a", plan 34b23ed6c28e.
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
    --name llama-3-1-70b-serve-0 \
    --restart unless-stopped \
    --label ai.deploy.deployment=llama-3-1-70b \
    --label ai.deploy.node=h100-a \
    --label ai.deploy.plan-hash=34b23ed6c28e \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=serve \
    --label ai.deploy.service=serve-0 \
    --label ai.deploy.spec-hash=371caac533d7 \
    --network host \
    --ipc host \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --gpus '"device=0,1,2,3,4,5,6,7"' \
    --volume "${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface" \
    --volume "$HOME"/.cache/deploy-jit/vllm/vllm:/root/.cache/vllm \
    --volume "$HOME"/.cache/deploy-jit/vllm/flashinfer:/root/.cache/flashinfer \
    --volume "$HOME"/.cache/deploy-jit/vllm/triton:/root/.triton \
    --env HF_TOKEN \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:8001/health 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:8001/health || wget -q -O /dev/null http://127.0.0.1:8001/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 1260s \
    --entrypoint vllm \
    vllm/vllm-openai:v0.33.0 serve meta-llama/Llama-3.1-70B-Instruct \
    --served-model-name llama-3.1-70b \
    --host 127.0.0.1 \
    --port 8001 \
    --tensor-parallel-size 8 \
    --max-model-len 32768 \
    --gpu-memory-utilization 0.9
}

bare_serve_0() {
  exec env \
    CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 \
    vllm serve meta-llama/Llama-3.1-70B-Instruct \
    --served-model-name llama-3.1-70b \
    --host 127.0.0.1 \
    --port 8001 \
    --tensor-parallel-size 8 \
    --max-model-len 32768 \
    --gpu-memory-utilization 0.9
}

docker_lb() {
  wait_healthy llama-3-1-70b-serve-0 1300
  docker run --detach \
    --name llama-3-1-70b-lb \
    --restart unless-stopped \
    --label ai.deploy.deployment=llama-3-1-70b \
    --label ai.deploy.node=h100-a \
    --label ai.deploy.plan-hash=34b23ed6c28e \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=lb \
    --label ai.deploy.service=lb \
    --label ai.deploy.spec-hash=71bcdbd3773c \
    --network host \
    --ipc private \
    --shm-size 64m \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --volume "$HERE"/nginx.conf:/etc/nginx/nginx.conf:ro \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:8000/health 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:8000/health || wget -q -O /dev/null http://127.0.0.1:8000/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 60s \
    --entrypoint nginx \
    nginx:1.27-alpine \
    -g 'daemon off;'
}

bare_lb() {
  exec env \
    nginx \
    -c "$HERE/nginx.conf" \
    -g 'daemon off;'
}

case "${1:-docker}" in
  docker)
    docker_serve_0
    docker_lb
    ;;
  bare)
    case "${2:-}" in
      serve-0) bare_serve_0 ;;
      lb) bare_lb ;;
      *) echo "usage: $0 bare SERVICE (one of: serve-0 lb)" >&2; exit 2 ;;
    esac
    ;;
  list)
    echo serve-0
    echo lb
    ;;
  *) echo "usage: $0 [docker | bare SERVICE | list]" >&2; exit 2 ;;
esac
