#!/usr/bin/env bash
# Rendered by deploy: deployment "deepseek-v3", node "h100-08", plan 2acb5b32d88b.
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

docker_decode_0_rank3() {
  docker run --detach \
    --name deepseek-v3-decode-0-rank3 \
    --restart no \
    --label ai.deploy.deployment=deepseek-v3 \
    --label ai.deploy.node=h100-08 \
    --label ai.deploy.plan-hash=2acb5b32d88b \
    --label ai.deploy.rank=3 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=decode \
    --label ai.deploy.service=decode-0-rank3 \
    --label ai.deploy.spec-hash=a529f2dde395 \
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
    --volume "$HOME"/.cache/deploy-jit/sglang/sglang:/root/.cache/sglang \
    --volume "$HOME"/.cache/deploy-jit/sglang/deep_gemm:/root/.cache/deep_gemm \
    --volume "$HOME"/.cache/deploy-jit/sglang/flashinfer:/root/.cache/flashinfer \
    --volume "$HOME"/.cache/deploy-jit/sglang/triton:/root/.triton \
    --env HF_TOKEN \
    --env 'NCCL_IB_HCA==mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7' \
    --env NCCL_SOCKET_IFNAME=ib0 \
    --env SGLANG_HOST_IP=192.0.2.28 \
    --health-cmd 'python3 -c '"'"'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()'"'"' 192.0.2.25 20200' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 3660s \
    --entrypoint python3 \
    lmsysorg/sglang:v0.5.23 -m sglang.launch_server \
    --model-path deepseek-ai/DeepSeek-V3 \
    --tp-size 64 \
    --attn-dp-size 64 \
    --ep-size 64 \
    --moe-a2a-backend deepep \
    --nnodes 8 \
    --node-rank 3 \
    --dist-init-addr 192.0.2.25:20200 \
    --context-length 32768 \
    --mem-fraction-static 0.817 \
    --enable-metrics \
    --disaggregation-mode decode \
    --disaggregation-transfer-backend mooncake \
    --disaggregation-ib-device mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7 \
    --trust-remote-code \
    --moe-dense-tp-size 1 \
    --enable-dp-lm-head \
    --enable-two-batch-overlap \
    --ep-num-redundant-experts 64 \
    --eplb-algorithm deepseek \
    --enable-eplb \
    --deepep-mode low_latency \
    --cuda-graph-bs-decode 256 \
    --max-running-requests 16384
}

bare_decode_0_rank3() {
  exec env \
    CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 \
    'NCCL_IB_HCA==mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7' \
    NCCL_SOCKET_IFNAME=ib0 \
    SGLANG_HOST_IP=192.0.2.28 \
    python3 -m sglang.launch_server \
    --model-path deepseek-ai/DeepSeek-V3 \
    --tp-size 64 \
    --attn-dp-size 64 \
    --ep-size 64 \
    --moe-a2a-backend deepep \
    --nnodes 8 \
    --node-rank 3 \
    --dist-init-addr 192.0.2.25:20200 \
    --context-length 32768 \
    --mem-fraction-static 0.817 \
    --enable-metrics \
    --disaggregation-mode decode \
    --disaggregation-transfer-backend mooncake \
    --disaggregation-ib-device mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7 \
    --trust-remote-code \
    --moe-dense-tp-size 1 \
    --enable-dp-lm-head \
    --enable-two-batch-overlap \
    --ep-num-redundant-experts 64 \
    --eplb-algorithm deepseek \
    --enable-eplb \
    --deepep-mode low_latency \
    --cuda-graph-bs-decode 256 \
    --max-running-requests 16384
}

case "${1:-docker}" in
  docker)
    docker_decode_0_rank3
    ;;
  bare)
    case "${2:-}" in
      decode-0-rank3) bare_decode_0_rank3 ;;
      *) echo "usage: $0 bare SERVICE (one of: decode-0-rank3)" >&2; exit 2 ;;
    esac
    ;;
  list)
    echo decode-0-rank3
    ;;
  *) echo "usage: $0 [docker | bare SERVICE | list]" >&2; exit 2 ;;
esac
