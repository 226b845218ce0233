#!/usr/bin/env bash
# Rendered by deploy: deployment "pd2node-tp2", node "cpu2", plan 7a60f6b7878c.
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

docker_decode_0() {
  docker run --detach \
    --name pd2node-tp2-decode-0 \
    --restart unless-stopped \
    --label ai.deploy.deployment=pd2node-tp2 \
    --label ai.deploy.node=cpu2 \
    --label ai.deploy.plan-hash=7a60f6b7878c \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=decode \
    --label ai.deploy.service=decode-0 \
    --label ai.deploy.spec-hash=cb24d95cbd21 \
    --network host \
    --ipc private \
    --shm-size 2g \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --volume "${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface" \
    --volume "$HOME"/.cache/deploy-jit/vllm/vllm:/root/.cache/vllm \
    --volume "$HOME"/.cache/deploy-jit/vllm/flashinfer:/root/.cache/flashinfer \
    --volume "$HOME"/.cache/deploy-jit/vllm/triton:/root/.triton \
    --env HF_TOKEN \
    --env UCX_NET_DEVICES=all \
    --env VLLM_CPU_KVCACHE_SPACE=2 \
    --env 'VLLM_CPU_OMP_THREADS_BIND=0-3|4-7' \
    --env VLLM_HOST_IP=192.0.2.41 \
    --env VLLM_NIXL_SIDE_CHANNEL_HOST=192.0.2.41 \
    --env VLLM_NIXL_SIDE_CHANNEL_PORT=5601 \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://192.0.2.41:8200/health 2>/dev/null || curl -fsS -o /dev/null http://192.0.2.41:8200/health || wget -q -O /dev/null http://192.0.2.41:8200/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 660s \
    --entrypoint vllm \
    deploy-vllm-cpu:0.32.0 serve meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 192.0.2.41 \
    --port 8200 \
    --tensor-parallel-size 2 \
    --max-model-len 8192 \
    --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer","kv_load_failure_policy":"fail"}'
}

bare_decode_0() {
  exec env \
    UCX_NET_DEVICES=all \
    VLLM_CPU_KVCACHE_SPACE=2 \
    'VLLM_CPU_OMP_THREADS_BIND=0-3|4-7' \
    VLLM_HOST_IP=192.0.2.41 \
    VLLM_NIXL_SIDE_CHANNEL_HOST=192.0.2.41 \
    VLLM_NIXL_SIDE_CHANNEL_PORT=5601 \
    vllm serve meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 192.0.2.41 \
    --port 8200 \
    --tensor-parallel-size 2 \
    --max-model-len 8192 \
    --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer","kv_load_failure_policy":"fail"}'
}

case "${1:-docker}" in
  docker)
    docker_decode_0
    ;;
  bare)
    case "${2:-}" in
      decode-0) bare_decode_0 ;;
      *) echo "usage: $0 bare SERVICE (one of: decode-0)" >&2; exit 2 ;;
    esac
    ;;
  list)
    echo decode-0
    ;;
  *) echo "usage: $0 [docker | bare SERVICE | list]" >&2; exit 2 ;;
esac
