"""SGLang's memory defaults, as its memory hook derives them from the GPU, per release.

When `--mem-fraction-static` is not given, SGLang reserves for activations and CUDA graphs and
keeps the rest for weights and the KV pool: `mem_fraction_static = (gpu_mem - reserved) /
gpu_mem`, both in MiB, where `gpu_mem` is the card's total memory (nvidia-smi `memory.total`).
deploy always renders the fraction it plans with, so this rule is the engine's own estimate of
the headroom a layout needs, which deploy keeps unless a layout fits only with less.

Read from the code each release's PyPI wheel ships: `sglang/srt/arg_groups/memory_hook.py`
(`handle_gpu_memory_settings`, `reserve_for_graph_mb`, `reserve_for_deepep_a2a_mb`) and
`cuda_graph_hook.py` (which prefill graph runs, and when it is turned off) in 0.5.19, 0.5.21,
0.5.22 and 0.5.23, the releases deploy renders for; `ServerArgs._handle_gpu_memory_settings`
in 0.5.1.post3, 0.5.3, 0.5.4.post2, 0.5.5.post1, 0.5.6.post2 and 0.5.14, the releases of the
published runs the performance model is calibrated on:

* chunked-prefill size and decode CUDA-graph batch cap by GPU memory (strict `<`, GiB):
  < 20: 2048 / 8; < 35: 2048 / 24 (TP < 4) or 80 (16 or 80 in 0.5.3), 4096 / 48 or 160 from
  0.5.21; < 60: 4096 / 32 or 160; < 160: 8192 / 256 or 512; else 16384 / 512;
* from 0.5.3, reserved = 512 + 1.5 per activation token (max(chunk, 2048); on a PD decode
  worker from 0.5.19 max(batch cap x draft tokens, 2048)) + 1024 per 8 TP x PP ranks + the
  graph reserve, then at least 10 GiB on GPUs over 60 GiB, then + 2 GiB for a speculative
  draft before 0.5.14, or for DeepEP's all-to-all buffers from 0.5.19;
* the graph reserve: 2 per decode batch size of the cap; with attention DP, + cap x DP x 3
  (x 4.5 above a cap of 300); the prefill graph where it runs: 8 per captured token size, or
  1536 flat for MLA models, + 1024 with DeepEP (0.5.19's breakable graph).
* which prefill graph runs: none by default before 0.5.14; torch.compile piecewise in 0.5.14,
  and from 0.5.19 on AMD, turned off by attention DP, PP, an all-to-all MoE backend (DeepEP) and
  PD disaggregation; from 0.5.19 on NVIDIA the breakable graph, turned off by PP only (of what
  deploy plans) and absent on a PD decode worker;
* 0.5.1: a flat reserve by GPU memory, (2.8 + TP x PP / 10) GiB below 35 GiB, (9.5 + TP x PP /
  2) below 90, (12 + TP x PP / 2) below 160, else 32 GiB; + 2 GiB for a speculative draft and
  + 4 GiB with attention DP. Releases before 0.5 took fixed fractions (`estimate.py`).

`gpu_mem` here is the total CUDA reports (`GpuSpec.memory_gib`); nvidia-smi's total also holds
the driver's reserve (0.47 GiB on an H100), which moves a fraction by about 0.001.

The attention-DP term grows with the number of groups: 512 x 16 x 4.5 MiB is 36 GiB, so with
16 groups on an 80 GB card SGLang's own default leaves about 0.3 of the memory for weights and
KV, and DeepSeek's weights do not fit. The deployments that run attention DP that wide set the
fraction themselves and run with far less: LMSYS's 96 H100s, DP32 prefill at 0.82 and DP72
decode (graphs up to 256 per group) at 0.835, about 13 GiB (sgl-project/sglang#6017). So the
fraction deploy renders (`deploy_reserve=True`) leaves that term out; the engine's own default
(`deploy_reserve=False`) keeps it, for runs that gave no fraction.
"""

from __future__ import annotations

from orchestrator.versioning import version_key

# (GiB below which, chunked-prefill size, decode graph cap for TP < 4, for TP >= 4)
_BUCKETS = (
    (20, 2048, 8, 8),
    (35, 4096, 48, 160),
    (60, 4096, 32, 160),
    (160, 8192, 256, 512),
)
_LARGEST = (16384, 512, 512)
# 20-35 GiB cards before 0.5.21, which raised them ("32GB Blackwell (RTX 5090) can hold decode
# cuda graphs well past bs=24"); 0.5.3 captured up to 16 below TP4.
_SMALL_BEFORE_0_5_21 = (2048, 24, 80)
_SMALL_IN_0_5_3 = (2048, 16, 80)
# 0.5.1: chunk by memory (2048 below 35 GiB, 8192 below 160, else 16384); graphs up to 8 or 80
# below 35 GiB, else the graph runner's default of 160.
_BUCKETS_0_5_1 = ((35, 2048, 8, 80), (160, 8192, 160, 160))
_LARGEST_0_5_1 = (16384, 160, 160)
# (GiB below which, fixed reserve GiB, GiB per TP x PP rank): 0.5.1's flat reserve.
_FLAT_0_5_1 = ((35, 2.8, 0.1), (90, 9.5, 0.5), (160, 12.0, 0.5))
_FLAT_0_5_1_LARGEST = 32.0

BASE_MIB = 512
MIB_PER_ACTIVATION_TOKEN = 1.5
MIN_ACTIVATION_TOKENS = 2048
MIB_PER_EIGHT_RANKS = 1024
FLOOR_ABOVE_60_GIB_MIB = 10 * 1024
MIB_PER_DECODE_GRAPH_SIZE = 2
MIB_PER_ATTN_DP_GRAPH_SIZE = 3
MIB_PER_ATTN_DP_GRAPH_SIZE_OVER_300 = 1.5
MIB_PER_PREFILL_GRAPH_SIZE = 8
MLA_PREFILL_GRAPH_MIB = 1536
DEEPEP_A2A_MIB = 2 * 1024
DEEPEP_PREFILL_GRAPH_MIB = 1024
SPECULATIVE_DRAFT_MIB = 2 * 1024
ATTN_DP_MIB_0_5_1 = 4 * 1024


def _release(version: str) -> tuple[int, int, int]:
    """The release's X.Y.Z (a `.postN` build is its release's code, not older)."""
    key = version_key(version)
    return (key[0], key[1] if len(key) > 1 else 0, key[2] if len(key) > 2 else 0)


def _bucket(gpu_gib: float, version: str) -> tuple[int, int, int]:
    gpu_mib = gpu_gib * 1024
    release = _release(version)
    if release < (0, 5, 3):
        for below, chunk, small_tp, large_tp in _BUCKETS_0_5_1:
            if gpu_mib < below * 1024:
                return chunk, small_tp, large_tp
        return _LARGEST_0_5_1
    for below, chunk, small_tp, large_tp in _BUCKETS:
        if gpu_mib < below * 1024:
            if below == 35 and release < (0, 5, 21):
                return _SMALL_IN_0_5_3 if release < (0, 5, 4) else _SMALL_BEFORE_0_5_21
            return chunk, small_tp, large_tp
    return _LARGEST


def chunked_prefill_size(gpu_gib: float, version: str) -> int:
    """SGLang's default `--chunked-prefill-size` on a card of `gpu_gib` GiB."""
    return _bucket(gpu_gib, version)[0]


def decode_graph_cap(gpu_gib: float, tp: int, version: str) -> int:
    """SGLang's default decode CUDA-graph batch cap (`--cuda-graph-max-bs`)."""
    _, small_tp, large_tp = _bucket(gpu_gib, version)
    return small_tp if tp < 4 else large_tp


def prefill_graph_sizes(cap: int) -> int:
    """How many token counts the piecewise prefill graph captures up to `cap`
    (`generate_prefill_cuda_graph_batch_sizes`)."""
    ranges = (
        range(4, 33, 4),
        range(48, 257, 16),
        range(288, 513, 32),
        range(576, 1025, 64),
        range(1280, 4097, 256),
        range(4608, cap + 1, 512),
    )
    return sum(1 for sizes in ranges for size in sizes if size <= cap)


def reserved_mib(
    gpu_gib: float,
    *,
    tp: int,
    pp: int,
    attn_dp: int,
    version: str,
    mla: bool,
    phase: str = "both",
    chunk: int | None = None,
    graph_cap: int | None = None,
    draft_tokens: int = 0,
    deepep: bool = False,
    cuda_graphs: bool = True,
    deploy_reserve: bool = False,
    amd: bool = False,
) -> float:
    """MiB SGLang leaves outside weights and KV on each GPU when it picks the fraction itself
    (`deploy_reserve`: what deploy reserves instead, without the attention-DP term).

    `phase` is "prefill" or "decode" for a disaggregated worker; `chunk` and `graph_cap` are the
    user's `--chunked-prefill-size` / `--cuda-graph-max-bs` (None: the release's default);
    `cuda_graphs=False` is `--disable-cuda-graph` (no decode graphs from 0.5.19; the prefill
    graph's reserve is kept, as the code that disables it is not read here); `amd`: a ROCm GPU.
    """
    release = _release(version)
    pads_attention_dp = attn_dp > 1 and not deploy_reserve
    if release < (0, 5, 3):
        return _reserved_0_5_1(gpu_gib, tp * pp, draft_tokens > 0, pads_attention_dp)
    role = phase
    if release < (0, 5, 19):
        # No per-role reserve and no DeepEP term before 0.5.19; decode graphs always counted.
        phase, cuda_graphs = "both", True
    chunk = chunk or chunked_prefill_size(gpu_gib, version)
    cap = graph_cap or decode_graph_cap(gpu_gib, tp, version)
    if phase == "decode":
        tokens = max(cap * max(1, draft_tokens), MIN_ACTIVATION_TOKENS)
    else:
        tokens = max(chunk, MIN_ACTIVATION_TOKENS)
    reserved = BASE_MIB + tokens * MIB_PER_ACTIVATION_TOKEN + tp * pp / 8 * MIB_PER_EIGHT_RANKS
    if cuda_graphs and phase != "prefill":
        reserved += cap * MIB_PER_DECODE_GRAPH_SIZE
    if pads_attention_dp and phase != "prefill":
        reserved += cap * attn_dp * MIB_PER_ATTN_DP_GRAPH_SIZE
        if cap > 300:
            reserved += cap * attn_dp * MIB_PER_ATTN_DP_GRAPH_SIZE_OVER_300
    breakable = release >= (0, 5, 19) and not amd
    if _prefill_graph_runs(release, breakable, pp=pp, attn_dp=attn_dp, deepep=deepep, phase=role):
        reserved += (
            MLA_PREFILL_GRAPH_MIB
            if mla
            else prefill_graph_sizes(chunk) * MIB_PER_PREFILL_GRAPH_SIZE
        )
        if deepep and breakable:
            reserved += DEEPEP_PREFILL_GRAPH_MIB
    if gpu_gib > 60:
        reserved = max(reserved, FLOOR_ABOVE_60_GIB_MIB)
    if release < (0, 5, 14) and draft_tokens > 0:
        reserved += SPECULATIVE_DRAFT_MIB
    if release >= (0, 5, 19) and deepep and cuda_graphs and phase != "prefill":
        reserved += DEEPEP_A2A_MIB
    return reserved


def _prefill_graph_runs(
    release: tuple[int, int, int],
    breakable: bool,
    *,
    pp: int,
    attn_dp: int,
    deepep: bool,
    phase: str,
) -> bool:
    """Whether the release captures a prefill CUDA graph for this layout (`cuda_graph_hook`:
    `apply_cuda_graph_compatibility` runs before the memory hook)."""
    if release < (0, 5, 14) or phase == "decode" or pp > 1:
        return False
    if breakable:
        return True
    # torch.compile piecewise: off with attention DP, an all-to-all MoE backend or PD.
    return attn_dp == 1 and not deepep and phase == "both"


def _reserved_0_5_1(gpu_gib: float, ranks: int, draft: bool, attention_dp: bool) -> float:
    """0.5.1's flat reserve by GPU memory and TP x PP ranks."""
    gib = _FLAT_0_5_1_LARGEST
    for below, fixed, per_rank in _FLAT_0_5_1:
        if gpu_gib < below:
            gib = fixed + ranks * per_rank
            break
    reserved = gib * 1024
    if draft:
        reserved += SPECULATIVE_DRAFT_MIB
    if attention_dp:
        reserved += ATTN_DP_MIB_0_5_1
    return reserved


def mem_fraction_static(gpu_gib: float, reserved: float) -> float:
    """`round((gpu_mem - reserved) / gpu_mem, 3)`, as SGLang rounds it."""
    gpu_mib = gpu_gib * 1024
    return round((gpu_mib - reserved) / gpu_mib, 3)
