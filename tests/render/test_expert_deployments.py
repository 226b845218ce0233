"""Expert deployments: each renders, through the planner, the flags of a published command.

Every case names the command it is compared with (source URL and the quoted command), the
flags the render must carry with their values (spelt as the pinned version's parser spells
them), and each published flag the render does not carry, with why. The rendered node files
are pinned by golden files under tests/golden/expert-*/ (regenerate with --update-golden).
Layouts are pinned with the plan options where the published command fixes one, so the cases
hold whatever the planner's defaults become.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import cli

from .conftest import GOLDEN_DIR

REPO = Path(__file__).resolve().parent.parent.parent
CLUSTERS = REPO / "profiles" / "clusters"


@dataclass(frozen=True)
class Service:
    """One rendered container and the flags (name -> value, None for a switch) it must have."""

    node: str
    name: str
    flags: dict[str, str | None]
    absent: tuple[str, ...] = ()
    privileged: bool = False


@dataclass(frozen=True)
class Expert:
    name: str
    args: list[str]
    source: str
    published: str
    services: list[Service]
    # Published flags the render does not carry, and why.
    not_matched: dict[str, str] = field(default_factory=dict)


LMSYS_PD = Expert(
    name="sglang-deepseek-pd-96xh100",
    args=[
        "deepseek-v3",
        "--engine",
        "sglang",
        "--disagg",
        "--cluster",
        str(CLUSTERS / "twelve-node-h100-ib.yaml"),
        "--prefill-gpus",
        "32",
        "--decode-gpus",
        "64",
        "--goal",
        "throughput",
    ],
    source="https://github.com/sgl-project/sglang/issues/6017 "
    "(https://lmsys.org/blog/2025-05-05-large-scale-ep/)",
    published=(
        "prefill: python3 -m sglang.launch_server --model-path /dev/shm/DeepSeek-V3-0324 "
        "--disaggregation-ib-device mlx5_1 --disaggregation-mode prefill --dist-init-addr "
        "10.5.55.1:5757 --nnodes 4 --node-rank 0 --tp-size 32 --dp-size 32 "
        "--enable-dp-attention --decode-log-interval 1 --enable-deepep-moe --page-size 1 "
        "--host 0.0.0.0 --trust-remote-code --moe-dense-tp-size 1 --enable-dp-lm-head "
        "--disable-radix-cache --watchdog-timeout 1000000 --enable-two-batch-overlap "
        "--deepep-mode normal --mem-fraction-static 0.82 --chunked-prefill-size 524288 "
        "--max-running-requests 8192 --max-total-tokens 131072 --context-length 8192 "
        "--ep-num-redundant-experts 32 --ep-dispatch-algorithm dynamic --eplb-algorithm "
        "deepseek --deepep-config deepep_vp.json; "
        "decode: ... --disaggregation-mode decode --dist-init-addr 10.5.55.5:5757 --nnodes 9 "
        "--tp-size 72 --dp-size 72 --enable-dp-attention ... --enable-two-batch-overlap "
        "--deepep-mode low_latency --mem-fraction-static 0.81 --max-running-requests 18432 "
        "--context-length 4500 --ep-num-redundant-experts 32 --cuda-graph-bs 256"
    ),
    services=[
        Service(
            node="h100-01",
            name="prefill-0-rank0",
            flags={
                "--disaggregation-mode": "prefill",
                "--nnodes": "4",
                "--tp-size": "32",
                "--attn-dp-size": "32",
                "--moe-a2a-backend": "deepep",
                "--trust-remote-code": None,
                "--moe-dense-tp-size": "1",
                "--enable-dp-lm-head": None,
                "--enable-two-batch-overlap": None,
                "--deepep-mode": "normal",
                "--chunked-prefill-size": "524288",
                "--max-running-requests": "8192",
                "--ep-num-redundant-experts": "32",
                "--ep-dispatch-algorithm": "dynamic",
                "--eplb-algorithm": "deepseek",
                "--enable-eplb": None,
                "--disaggregation-ib-device": "mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,"
                "mlx5_6,mlx5_7",
                "--host": "192.0.2.21",
            },
            absent=("--disable-radix-cache", "--enable-dp-attention", "--dp-size"),
            privileged=True,
        ),
        Service(
            node="h100-05",
            name="decode-0-rank0",
            flags={
                "--disaggregation-mode": "decode",
                "--nnodes": "8",
                "--tp-size": "64",
                "--attn-dp-size": "64",
                "--moe-a2a-backend": "deepep",
                "--trust-remote-code": None,
                "--moe-dense-tp-size": "1",
                "--enable-dp-lm-head": None,
                "--enable-two-batch-overlap": None,
                "--deepep-mode": "low_latency",
                "--cuda-graph-bs-decode": "256",
                # 256 per attention-DP rank, as LMSYS's 18432 on 72 ranks
                "--max-running-requests": "16384",
                # 256 + 64 = 320 experts divide over 64 ranks; 256 + 32 would not
                "--ep-num-redundant-experts": "64",
                "--eplb-algorithm": "deepseek",
                "--enable-eplb": None,
                "--host": "192.0.2.25",
            },
            absent=("--ep-dispatch-algorithm", "--chunked-prefill-size"),
            privileged=True,
        ),
    ],
    not_matched={
        "--nnodes 9 --tp-size 72 (decode)": "twelve nodes hold 4 prefill + 8 decode nodes; the "
        "planner gives decode the rest (EP64)",
        "--enable-deepep-moe, --dp-size N --enable-dp-attention": "spelt --moe-a2a-backend "
        "deepep and --attn-dp-size N by SGLang 0.5.23",
        "--cuda-graph-bs 256": "removed in SGLang 0.5.20; --cuda-graph-bs-decode 256",
        "--mem-fraction-static 0.82/0.81": "the fraction of deploy's memory plan",
        "--disable-radix-cache, --max-total-tokens, --context-length": "benchmark settings",
        "--deepep-config, --init-expert-location": "files tuned on the LMSYS cluster; "
        "--enable-eplb rebalances online instead",
        "--decode-log-interval, --watchdog-timeout, --page-size 1": "debugging; default",
        "--host 0.0.0.0": "deploy binds the node's cluster address",
        "--dist-init-addr 10.5.55.1:5757": "the head node's address, port 20100/20200 per pool",
    },
)

SGLANG_TP16 = Expert(
    name="sglang-deepseek-tp16-2xh100",
    args=[
        "deepseek-r1",
        "--engine",
        "sglang",
        "--cluster",
        str(CLUSTERS / "two-node-h100-ib.yaml"),
        "--tp",
        "16",
        "--ep",
        "1",
        "--attn-dp",
        "1",
    ],
    source="https://github.com/sgl-project/sglang/blob/main/benchmark/deepseek_v3/README.md",
    published=(
        "python3 -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3 --tp 16 "
        "--dist-init-addr 10.0.0.1:5000 --nnodes 2 --node-rank 0 --trust-remote-code "
        '("If you have two H100 nodes, the usage is similar to the aforementioned H20")'
    ),
    services=[
        Service(
            node="h100-a",
            name="serve-0-rank0",
            flags={
                "--tp-size": "16",
                "--nnodes": "2",
                "--node-rank": "0",
                "--dist-init-addr": "192.0.2.10:20000",
                "--trust-remote-code": None,
            },
            absent=("--moe-a2a-backend", "--ep-size", "--enable-two-batch-overlap"),
        ),
        Service(
            node="h100-b",
            name="serve-0-rank1",
            flags={
                "--tp-size": "16",
                "--nnodes": "2",
                "--node-rank": "1",
                "--dist-init-addr": "192.0.2.10:20000",
                "--trust-remote-code": None,
            },
            absent=("--host", "--moe-a2a-backend"),
        ),
    ],
    not_matched={"--tp 16": "spelt --tp-size 16 (--tp works only by argparse prefix match)"},
)

VLLM_DEP = Expert(
    name="vllm-deepseek-dep16-2xh100",
    args=[
        "deepseek-v3",
        "--engine",
        "vllm",
        "--cluster",
        str(CLUSTERS / "two-node-h100-ib.yaml"),
        "--tp",
        "1",
        "--dp",
        "16",
        "--ep",
        "16",
        "--goal",
        "throughput",
    ],
    source="https://github.com/vllm-project/vllm/blob/main/docs/serving/"
    "expert_parallel_deployment.md",
    published=(
        "Node 1: vllm serve deepseek-ai/DeepSeek-V3-0324 --all2all-backend deepep_low_latency "
        "--tensor-parallel-size 1 --enable-expert-parallel --data-parallel-size 16 "
        "--data-parallel-size-local 8 --data-parallel-address 192.168.1.100 "
        "--data-parallel-rpc-port 13345 --api-server-count=8; Node 2: the same plus "
        "--data-parallel-start-rank 8 --headless, without --api-server-count; EPLB: "
        "\"add these EPLB flags to each node's command. We recommend setting --eplb-config "
        '\'{"num_redundant_experts":32}\'"; dual-batch overlap: --enable-dbo '
        "(docs/design/dbo.md)"
    ),
    services=[
        Service(
            node="h100-a",
            name="serve-0-rank0",
            flags={
                "--all2all-backend": "deepep_low_latency",
                "--tensor-parallel-size": "1",
                "--enable-expert-parallel": None,
                "--data-parallel-size": "16",
                "--data-parallel-size-local": "8",
                "--data-parallel-address": "192.0.2.10",
                "--api-server-count": "8",
                "--enable-eplb": None,
                "--eplb-config": '{"num_redundant_experts":32}',
                "--enable-dbo": None,
                "--trust-remote-code": None,
            },
            absent=("--headless",),
            privileged=True,
        ),
        Service(
            node="h100-b",
            name="serve-0-rank1",
            flags={
                "--all2all-backend": "deepep_low_latency",
                "--data-parallel-size": "16",
                "--data-parallel-size-local": "8",
                "--data-parallel-start-rank": "8",
                "--headless": None,
                "--enable-eplb": None,
                "--eplb-config": '{"num_redundant_experts":32}',
                "--enable-dbo": None,
            },
            absent=("--api-server-count",),
            privileged=True,
        ),
    ],
    not_matched={
        "--data-parallel-rpc-port 13345": "vLLM's default 29550 (any reachable port)",
        "VLLM_ALL2ALL_BACKEND, VLLM_USE_DEEP_GEMM": "the --all2all-backend flag; DeepGEMM "
        "is on by default in the pinned versions",
    },
)

VLLM_PD_HYBRID = Expert(
    name="vllm-deepseek-pd-hybrid-lb-96xh100",
    args=[
        "deepseek-v3",
        "--engine",
        "vllm",
        "--disagg",
        "--cluster",
        str(CLUSTERS / "twelve-node-h100-ib.yaml"),
        "--prefill-gpus",
        "32",
        "--decode-gpus",
        "64",
        "--tp",
        "1",
        "--goal",
        "throughput",
    ],
    source="https://github.com/vllm-project/vllm/blob/main/docs/serving/"
    "data_parallel_deployment.md (Hybrid LB) and "
    "https://github.com/vllm-project/vllm/blob/main/docs/serving/expert_parallel_deployment.md",
    published=(
        "hybrid LB: add --data-parallel-hybrid-lb on every node, with "
        "--data-parallel-size-local and --data-parallel-start-rank, not with --headless; an "
        "external LB in front of the per-node API servers; prefill uses "
        "deepep_high_throughput, decode deepep_low_latency (PD section of the EP guide); "
        "--kv-transfer-config with NixlConnector"
    ),
    services=[
        Service(
            node="h100-01",
            name="prefill-0-rank0",
            flags={
                "--all2all-backend": "deepep_high_throughput",
                "--data-parallel-size": "32",
                "--data-parallel-size-local": "8",
                "--data-parallel-hybrid-lb": None,
                "--data-parallel-start-rank": "0",
                "--api-server-count": "8",
                "--host": "192.0.2.21",
            },
            absent=("--headless",),
            privileged=True,
        ),
        Service(
            node="h100-06",
            name="decode-0-rank1",
            flags={
                "--all2all-backend": "deepep_low_latency",
                "--data-parallel-size": "64",
                "--data-parallel-size-local": "8",
                "--data-parallel-hybrid-lb": None,
                "--data-parallel-start-rank": "8",
                "--api-server-count": "8",
                "--host": "192.0.2.26",
                "--port": "8200",
                "--enable-eplb": None,
                "--eplb-config": '{"num_redundant_experts":64}',
                "--enable-dbo": None,
            },
            absent=("--headless",),
            privileged=True,
        ),
        Service(
            node="h100-01",
            name="router",
            flags={"--vllm-pd-disaggregation": None, "--host": "127.0.0.1"},
        ),
    ],
    not_matched={
        '"kv_role":"kv_both"': "producer on prefill, consumer on decode, so a failed KV load "
        "is an error rather than a recompute",
        '"num_redundant_experts":32': "64 on EP64: routed + redundant experts must divide "
        "over the EP ranks (288 does not divide by 64)",
    },
)

GPT_OSS = Expert(
    name="vllm-gpt-oss-120b-h100",
    args=["gpt-oss-120b", "--engine", "vllm", "--gpus", "1xH100", "--tp", "1"],
    source="https://github.com/vllm-project/recipes/blob/main/OpenAI/GPT-OSS.md"
    "#recipe-for-nvidia-blackwell-hopper-hardware",
    published=(
        "vllm serve openai/gpt-oss-120b --config GPT-OSS_Hopper.yaml --tensor-parallel-size 1; "
        "GPT-OSS_Hopper.yaml: no-enable-prefix-caching: true, max-cudagraph-capture-size: "
        "2048, max-num-batched-tokens: 8192, stream-interval: 20"
    ),
    services=[
        Service(
            node="local",
            name="serve-0",
            flags={
                "--tensor-parallel-size": "1",
                "--max-cudagraph-capture-size": "2048",
                "--stream-interval": "20",
            },
            absent=("--no-enable-prefix-caching", "--disable-prefix-caching"),
        )
    ],
    not_matched={
        "no-enable-prefix-caching": "the recipe adds it for synthetic benchmarks only",
        "max-num-batched-tokens: 8192": "vLLM pads the MXFP4 experts for its Hopper kernels "
        "(65.9 GiB on one H100): the planner lowers the step budget to 2048 so a 32k-token "
        "request fits at the default memory fraction",
    },
)

REPLICAS = Expert(
    name="vllm-llama-70b-replicas-2node",
    args=[
        "llama-3.1-70b",
        "--engine",
        "vllm",
        "--cluster",
        str(CLUSTERS / "two-node-h100-ib.yaml"),
        "--tp",
        "8",
    ],
    source="https://github.com/vllm-project/vllm/blob/main/docs/deployment/nginx.md",
    published=(
        "docker run ... vllm/vllm-openai --model meta-llama/Llama-2-7b-chat-hf "
        "(one server per GPU set) behind nginx: upstream backend { least_conn; "
        "server vllm0:8000 max_fails=3 fail_timeout=10000s; server vllm1:8000 ...; }"
    ),
    services=[
        Service(
            node="h100-a",
            name="serve-0",
            flags={"--tensor-parallel-size": "8", "--host": "127.0.0.1", "--port": "8001"},
        ),
        Service(
            node="h100-b",
            name="serve-1",
            flags={"--tensor-parallel-size": "8", "--host": "192.0.2.11", "--port": "8002"},
        ),
    ],
    not_matched={
        "server vllm0:8000": "the upstreams are 127.0.0.1 (same node) and the cluster file's "
        "address of the other node, so nginx resolves nothing at start",
        "fail_timeout=10000s": "10 s, so a restarted replica rejoins quickly",
    },
)

EXPERTS = [LMSYS_PD, SGLANG_TP16, VLLM_DEP, VLLM_PD_HYBRID, GPT_OSS, REPLICAS]


def _render(expert: Expert, out: Path) -> None:
    result = CliRunner().invoke(cli, ["render", *expert.args, "--out", str(out)])
    assert result.exit_code == 0, result.output


def _service(out: Path, node: str, name: str) -> dict[str, object]:
    compose = yaml.safe_load((out / node / "compose.yaml").read_text(encoding="utf-8"))
    service: dict[str, object] = compose["services"][name]
    return service


def _flags(command: list[str]) -> dict[str, str | None]:
    flags: dict[str, str | None] = {}
    current = None
    for word in command:
        if word.startswith("--"):
            current = word
            flags[current] = None
        elif current is not None and flags[current] is None:
            flags[current] = word
    return flags


def _tree(root: Path) -> dict[str, bytes]:
    # plan.json is the planner's contract, pinned by its own tests; here the launch files.
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "plan.json"
    }


@pytest.mark.parametrize("expert", EXPERTS, ids=[expert.name for expert in EXPERTS])
def test_expert_deployment_matches_its_published_command(
    expert: Expert, tmp_path: Path, update_golden: bool
) -> None:
    assert expert.source.startswith("https://") and expert.published
    out = tmp_path / expert.name
    _render(expert, out)
    for wanted in expert.services:
        service = _service(out, wanted.node, wanted.name)
        command = service["command"]
        assert isinstance(command, list)
        flags = _flags(command)
        for flag, value in wanted.flags.items():
            assert flag in flags, f"{wanted.name}: {flag} missing (from {expert.source})"
            assert flags[flag] == value, f"{wanted.name}: {flag} {flags[flag]} != {value}"
        for flag in wanted.absent:
            assert flag not in flags, f"{wanted.name}: {flag} should not be rendered"
        assert bool(service.get("privileged")) == wanted.privileged
    golden = GOLDEN_DIR / f"expert-{expert.name}"
    if update_golden:
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out, golden, ignore=shutil.ignore_patterns("plan.json"))
    rendered, expected = _tree(out), _tree(golden)
    assert sorted(rendered) == sorted(expected)
    for name, content in rendered.items():
        assert content == expected[name], f"{golden.name}/{name} differs from the golden file"


def test_replicas_nginx_upstreams_are_node_addresses(tmp_path: Path) -> None:
    out = tmp_path / "replicas"
    _render(REPLICAS, out)
    conf = (out / "h100-a" / "nginx.conf").read_text(encoding="utf-8")
    assert "least_conn;" in conf
    assert "server 127.0.0.1:8001 max_fails=3" in conf
    assert "server 192.0.2.11:8002 max_fails=3" in conf


def test_replicas_without_node_addresses_are_refused(tmp_path: Path) -> None:
    args = ["render", "llama-3.1-70b", "--gpus", "8xH100", "--nodes", "2", "--tp", "8"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output == (
        "error: the front on node1 needs the address of node node2, and --nodes without a "
        "cluster file names it only by a placeholder that nginx and the router cannot "
        "resolve; pass --cluster FILE with each node's address (see profiles/clusters/)\n"
    )


def test_every_unmatched_published_flag_says_why() -> None:
    for expert in EXPERTS:
        assert all(reason for reason in expert.not_matched.values()), expert.name
