#!/usr/bin/env bash
# Rendered by deploy: deployment "llama-3.1-8b", node "gpu-a", plan ab72b51f603a.
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
    --name llama-3-1-8b-prefill-0 \
    --restart unless-stopped \
    --label ai.deploy.deployment=llama-3.1-8b \
    --label ai.deploy.node=gpu-a \
    --label ai.deploy.plan-hash=ab72b51f603a \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=prefill \
    --label ai.deploy.service=prefill-0 \
    --label ai.deploy.spec-hash=8ca01f4da6a2 \
    --network host \
    --ipc host \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --gpus '"device=0,1,2,3"' \
    --volume "${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface" \
    --volume "$HOME"/.cache/deploy-jit/sglang/sglang:/root/.cache/sglang \
    --volume "$HOME"/.cache/deploy-jit/sglang/deep_gemm:/root/.cache/deep_gemm \
    --volume "$HOME"/.cache/deploy-jit/sglang/flashinfer:/root/.cache/flashinfer \
    --volume "$HOME"/.cache/deploy-jit/sglang/triton:/root/.triton \
    --env HF_TOKEN \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:30100/ready 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:30100/ready || wget -q -O /dev/null http://127.0.0.1:30100/ready' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 360s \
    --entrypoint python3 \
    lmsysorg/sglang:v0.5.23 -m sglang.launch_server \
    --model-path meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 30100 \
    --tp-size 4 \
    --context-length 32768 \
    --mem-fraction-static 0.9 \
    --enable-metrics \
    --disaggregation-mode prefill \
    --disaggregation-transfer-backend nixl \
    --disaggregation-bootstrap-port 8998
}

bare_prefill_0() {
  exec env \
    CUDA_VISIBLE_DEVICES=0,1,2,3 \
    python3 -m sglang.launch_server \
    --model-path meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 30100 \
    --tp-size 4 \
    --context-length 32768 \
    --mem-fraction-static 0.9 \
    --enable-metrics \
    --disaggregation-mode prefill \
    --disaggregation-transfer-backend nixl \
    --disaggregation-bootstrap-port 8998
}

docker_decode_0() {
  docker run --detach \
    --name llama-3-1-8b-decode-0 \
    --restart unless-stopped \
    --label ai.deploy.deployment=llama-3.1-8b \
    --label ai.deploy.node=gpu-a \
    --label ai.deploy.plan-hash=ab72b51f603a \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=decode \
    --label ai.deploy.service=decode-0 \
    --label ai.deploy.spec-hash=8a4c53695eaa \
    --network host \
    --ipc host \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --gpus '"device=4,5,6,7"' \
    --volume "${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface" \
    --volume "$HOME"/.cache/deploy-jit/sglang/sglang:/root/.cache/sglang \
    --volume "$HOME"/.cache/deploy-jit/sglang/deep_gemm:/root/.cache/deep_gemm \
    --volume "$HOME"/.cache/deploy-jit/sglang/flashinfer:/root/.cache/flashinfer \
    --volume "$HOME"/.cache/deploy-jit/sglang/triton:/root/.triton \
    --env HF_TOKEN \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:30200/ready 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:30200/ready || wget -q -O /dev/null http://127.0.0.1:30200/ready' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 360s \
    --entrypoint python3 \
    lmsysorg/sglang:v0.5.23 -m sglang.launch_server \
    --model-path meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 30200 \
    --tp-size 4 \
    --context-length 32768 \
    --mem-fraction-static 0.9 \
    --enable-metrics \
    --disaggregation-mode decode \
    --disaggregation-transfer-backend nixl
}

bare_decode_0() {
  exec env \
    CUDA_VISIBLE_DEVICES=4,5,6,7 \
    python3 -m sglang.launch_server \
    --model-path meta-llama/Llama-3.1-8B-Instruct \
    --served-model-name llama-3.1-8b \
    --host 127.0.0.1 \
    --port 30200 \
    --tp-size 4 \
    --context-length 32768 \
    --mem-fraction-static 0.9 \
    --enable-metrics \
    --disaggregation-mode decode \
    --disaggregation-transfer-backend nixl
}

docker_router() {
  wait_healthy llama-3-1-8b-prefill-0 400
  wait_healthy llama-3-1-8b-decode-0 400
  docker run --detach \
    --name llama-3-1-8b-router \
    --restart unless-stopped \
    --label ai.deploy.deployment=llama-3.1-8b \
    --label ai.deploy.node=gpu-a \
    --label ai.deploy.plan-hash=ab72b51f603a \
    --label ai.deploy.rank=0 \
    --label ai.deploy.replica=0 \
    --label ai.deploy.role=router \
    --label ai.deploy.service=router \
    --label ai.deploy.spec-hash=ac7047289b0f \
    --network host \
    --ipc private \
    --shm-size 64m \
    --log-opt max-file=5 \
    --log-opt max-size=100m \
    --health-cmd 'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=4)" http://127.0.0.1:30000/health 2>/dev/null || curl -fsS -o /dev/null http://127.0.0.1:30000/health || wget -q -O /dev/null http://127.0.0.1:30000/health' \
    --health-interval 10s \
    --health-timeout 5s \
    --health-retries 3 \
    --health-start-period 60s \
    --entrypoint python3 \
    lmsysorg/sglang:v0.5.23 -m sglang_router.launch_router \
    --pd-disaggregation \
    --prefill http://127.0.0.1:30100 8998 \
    --decode http://127.0.0.1:30200 \
    --host 127.0.0.1 \
    --port 30000
}

bare_router() {
  exec env \
    python3 -m sglang_router.launch_router \
    --pd-disaggregation \
    --prefill http://127.0.0.1:30100 8998 \
    --decode http://127.0.0.1:30200 \
    --host 127.0.0.1 \
    --port 30000
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
