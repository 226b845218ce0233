#!/usr/bin/env bash
# Rendered by deploy: deployment "deepseek-v3", node "h100-06", plan f0bf7baff618.
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

docker_decode_0_rank1() {
  docker run --detach \
    --name deepseek-v3-decode-0-rank1 \
    --restart no \
    --label ai.deploy.deployment=deepseek-v3 \
    --label ai.deploy.node=h100-06 \
    --label ai.deploy.plan-hash=f0bf7baff618 \
    --label ai.deploy.rank=1 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=decode \
    --label ai.deploy.service=decode-0-rank1 \
    --label ai.deploy.spec-hash=618bfbd132e1 \
    --network host \
    --ipc host \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --gpus '"device=0,1,2,3,4,5,6,7"' \
    --ulimit memlock=-1 \
    --ulimit stack=67108864 \
    --cap-add IPC_LOCK \
    --device /dev/infiniband \
    --privileged \
    --volume "${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface" \
    --volume "$HOME"/.cache/deploy-jit/vllm/vllm:/root/.cache/vllm \
    --volume "$HOME"/.cache/deploy-jit/vllm/flashinfer:/root/.cache/flashinfer \
    --volume "$HOME"/.cache/deploy-jit/vllm/triton:/root/.triton \
    --env HF_TOKEN \
    --env 'NCCL_IB_HCA==mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7' \
    --env NCCL_SOCKET_IFNAME=ib0 \
    --env UCX_NET_DEVICES=mlx5_0:1,mlx5_1:1,mlx5_2:1,mlx5_3:1,mlx5_4:1,mlx5_5:1,mlx5_6:1,mlx5_7:1 \
    --env VLLM_HOST_IP=192.0.2.26 \
    --env VLLM_NIXL_SIDE_CHANNEL_HOST=192.0.2.26 \
    --env VLLM_NIXL_SIDE_CHANNEL_PORT=5632 \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://192.0.2.26:8200/health 2>/dev/null || curl -fsS -o /dev/null http://192.0.2.26:8200/health || wget -q -O /dev/null http://192.0.2.26:8200/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 3720s \
    --entrypoint vllm \
    vllm/vllm-openai:v0.33.0 serve deepseek-ai/DeepSeek-V3 \
    --served-model-name deepseek-v3 \
    --host 192.0.2.26 \
    --port 8200 \
    --tensor-parallel-size 1 \
    --data-parallel-size 64 \
    --data-parallel-size-local 8 \
    --data-parallel-address 192.0.2.25 \
    --data-parallel-rpc-port 29750 \
    --data-parallel-hybrid-lb \
    --data-parallel-start-rank 8 \
    --enable-expert-parallel \
    --all2all-backend deepep_low_latency \
    --max-model-len 32768 \
    --gpu-memory-utilization 0.9 \
    --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer","kv_load_failure_policy":"fail"}' \
    --trust-remote-code \
    --enable-eplb \
    --eplb-config '{"num_redundant_experts":64}' \
    --api-server-count 8 \
    --enable-dbo
}

bare_decode_0_rank1() {
  exec env \
    CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 \
    'NCCL_IB_HCA==mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7' \
    NCCL_SOCKET_IFNAME=ib0 \
    UCX_NET_DEVICES=mlx5_0:1,mlx5_1:1,mlx5_2:1,mlx5_3:1,mlx5_4:1,mlx5_5:1,mlx5_6:1,mlx5_7:1 \
    VLLM_HOST_IP=192.0.2.26 \
    VLLM_NIXL_SIDE_CHANNEL_HOST=192.0.2.26 \
    VLLM_NIXL_SIDE_CHANNEL_PORT=5632 \
    vllm serve deepseek-ai/DeepSeek-V3 \
    --served-model-name deepseek-v3 \
    --host 192.0.2.26 \
    --port 8200 \
    --tensor-parallel-size 1 \
    --data-parallel-size 64 \
    --data-parallel-size-local 8 \
    --data-parallel-address 192.0.2.25 \
    --data-parallel-rpc-port 29750 \
    --data-parallel-hybrid-lb \
    --data-parallel-start-rank 8 \
    --enable-expert-parallel \
    --all2all-backend deepep_low_latency \
    --max-model-len 32768 \
    --gpu-memory-utilization 0.9 \
    --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer","kv_load_failure_policy":"fail"}' \
    --trust-remote-code \
    --enable-eplb \
    --eplb-config '{"num_redundant_experts":64}' \
    --api-server-count 8 \
    --enable-dbo
}

case "${1:-docker}" in
  docker)
    docker_decode_0_rank1
    ;;
  bare)
    case "${2:-}" in
      decode-0-rank1) bare_decode_0_rank1 ;;
      *) echo "usage: $0 bare SERVICE (one of: decode-0-rank1)" >&2; exit 2 ;;
    esac
    ;;
  list)
    echo decode-0-rank1
    ;;
  *) echo "usage: $0 [docker | bare SERVICE | list]" >&2; exit 2 ;;
esac
