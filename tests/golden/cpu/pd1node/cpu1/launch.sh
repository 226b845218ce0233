#!/usr/bin/env bash
# Rendered by deploy: deployment "pd1node", node "cpu1", plan 2cd98d87093b.
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

docker_prefill_0() {
  docker run --detach \
    --name pd1node-prefill-0 \
    --restart unless-stopped \
    --label ai.deploy.deployment=pd1node \
    --label ai.deploy.node=cpu1 \
    --label ai.deploy.plan-hash=2cd98d87093b \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=prefill \
    --label ai.deploy.service=prefill-0 \
    --label ai.deploy.spec-hash=3cc496245de2 \
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
    --env UCX_NET_DEVICES=all \
    --env VLLM_CPU_KVCACHE_SPACE=4 \
    --env VLLM_CPU_OMP_THREADS_BIND=0-3 \
    --env VLLM_NIXL_SIDE_CHANNEL_HOST=192.0.2.40 \
    --env VLLM_NIXL_SIDE_CHANNEL_PORT=5600 \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:8100/health 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:8100/health || wget -q -O /dev/null http://127.0.0.1:8100/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 660s \
    --entrypoint vllm \
    deploy-vllm-cpu:0.32.0 serve meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 8100 \
    --tensor-parallel-size 1 \
    --max-model-len 8192 \
    --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_producer","kv_load_failure_policy":"fail"}'
}

bare_prefill_0() {
  exec env \
    UCX_NET_DEVICES=all \
    VLLM_CPU_KVCACHE_SPACE=4 \
    VLLM_CPU_OMP_THREADS_BIND=0-3 \
    VLLM_NIXL_SIDE_CHANNEL_HOST=192.0.2.40 \
    VLLM_NIXL_SIDE_CHANNEL_PORT=5600 \
    vllm serve meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 8100 \
    --tensor-parallel-size 1 \
    --max-model-len 8192 \
    --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_producer","kv_load_failure_policy":"fail"}'
}

docker_decode_0() {
  docker run --detach \
    --name pd1node-decode-0 \
    --restart unless-stopped \
    --label ai.deploy.deployment=pd1node \
    --label ai.deploy.node=cpu1 \
    --label ai.deploy.plan-hash=2cd98d87093b \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=decode \
    --label ai.deploy.service=decode-0 \
    --label ai.deploy.spec-hash=caed8b1ddaa2 \
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
    --env UCX_NET_DEVICES=all \
    --env VLLM_CPU_KVCACHE_SPACE=4 \
    --env VLLM_CPU_OMP_THREADS_BIND=4-7 \
    --env VLLM_NIXL_SIDE_CHANNEL_HOST=192.0.2.40 \
    --env VLLM_NIXL_SIDE_CHANNEL_PORT=5601 \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:8200/health 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:8200/health || wget -q -O /dev/null http://127.0.0.1:8200/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 660s \
    --entrypoint vllm \
    deploy-vllm-cpu:0.32.0 serve meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 8200 \
    --tensor-parallel-size 1 \
    --max-model-len 8192 \
    --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer","kv_load_failure_policy":"fail"}'
}

bare_decode_0() {
  exec env \
    UCX_NET_DEVICES=all \
    VLLM_CPU_KVCACHE_SPACE=4 \
    VLLM_CPU_OMP_THREADS_BIND=4-7 \
    VLLM_NIXL_SIDE_CHANNEL_HOST=192.0.2.40 \
    VLLM_NIXL_SIDE_CHANNEL_PORT=5601 \
    vllm serve meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 8200 \
    --tensor-parallel-size 1 \
    --max-model-len 8192 \
    --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer","kv_load_failure_policy":"fail"}'
}

docker_router() {
  wait_healthy pd1node-prefill-0 700
  wait_healthy pd1node-decode-0 700
  docker run --detach \
    --name pd1node-router \
    --restart unless-stopped \
    --label ai.deploy.deployment=pd1node \
    --label ai.deploy.node=cpu1 \
    --label ai.deploy.plan-hash=2cd98d87093b \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=router \
    --label ai.deploy.service=router \
    --label ai.deploy.spec-hash=df6607e34cb9 \
    --network host \
    --ipc private \
    --shm-size 64m \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:8000/health 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:8000/health || wget -q -O /dev/null http://127.0.0.1:8000/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 60s \
    --entrypoint vllm-router \
    vllm/vllm-router:v0.1.17 \
    --vllm-pd-disaggregation \
    --prefill http://127.0.0.1:8100 \
    --decode http://127.0.0.1:8200 \
    --host 127.0.0.1 \
    --port 8000
}

bare_router() {
  exec env \
    vllm-router \
    --vllm-pd-disaggregation \
    --prefill http://127.0.0.1:8100 \
    --decode http://127.0.0.1:8200 \
    --host 127.0.0.1 \
    --port 8000
}

case "${1:-docker}" in
  docker)
    docker_prefill_0
    docker_decode_0
    docker_router
    ;;
  bare)
    case "${2:-}" in
      prefill-0) bare_prefill_0 ;;
      decode-0) bare_decode_0 ;;
      router) bare_router ;;
      *) echo "usage: $0 bare SERVICE (one of: prefill-0 decode-0 router)" >&2; exit 2 ;;
    esac
    ;;
  list)
    echo prefill-0
    echo decode-0
    echo router
    ;;
  *) echo "usage: $0 [docker | bare SERVICE | list]" >&2; exit 2 ;;
esac
