"""SGLang's own memory defaults, per release, against sums worked by hand from each release's
`sglang/srt/arg_groups/memory_hook.py` (the code its PyPI wheel ships). `gpu_mem` is what
nvidia-smi reports as memory.total, in MiB, for the card named."""

from __future__ import annotations

import pytest

from orchestrator.hardware.gpus import find_gpu
from orchestrator.models.catalog import catalog_model
from orchestrator.plan import Parallelism
from orchestrator.planning.memory import sglang_defaults
from orchestrator.planning.memory.estimate import default_memory_fraction, estimate

RTX_4090, A100_40, H100, H200, B200 = 24564, 40960, 81559, 143771, 183359


def _reserved(
    gpu_mib: int,
    version: str = "0.5.23",
    *,
    tp: int = 1,
    pp: int = 1,
    attn_dp: int = 1,
    mla: bool = False,
    phase: str = "both",
    chunk: int | None = None,
    graph_cap: int | None = None,
    draft_tokens: int = 0,
    deepep: bool = False,
    amd: bool = False,
) -> float:
    return sglang_defaults.reserved_mib(
        gpu_mib / 1024,
        tp=tp,
        pp=pp,
        attn_dp=attn_dp,
        version=version,
        mla=mla,
        phase=phase,
        chunk=chunk,
        graph_cap=graph_cap,
        draft_tokens=draft_tokens,
        deepep=deepep,
        amd=amd,
    )


@pytest.mark.parametrize(
    ("gpu_mib", "tp", "reserved", "fraction"),
    [
        # 512 + 1.5 x 8192 + tp/8 x 1024 + 2 x graph cap + 8 x 58 prefill graph sizes
        (H100, 1, 13904, 0.830),
        (H100, 2, 14032, 0.828),
        (H100, 4, 14800, 0.819),
        (H100, 8, 15312, 0.812),
        (H200, 1, 13904, 0.903),
        (H200, 8, 15312, 0.893),
        # 40 GiB: chunk 4096, cap 32 below TP4 and 160 from it, 50 prefill graph sizes
        (A100_40, 1, 7248, 0.823),
        (A100_40, 4, 7888, 0.807),
        (A100_40, 8, 8400, 0.795),
        # 160 GiB and more: chunk 16384, cap 512, 74 prefill graph sizes
        (B200, 1, 26832, 0.854),
        (B200, 8, 27728, 0.849),
    ],
)
def test_a_dense_model_on_each_size_of_card(
    gpu_mib: int, tp: int, reserved: int, fraction: float
) -> None:
    got = _reserved(gpu_mib, tp=tp)
    assert got == reserved
    assert sglang_defaults.mem_fraction_static(gpu_mib / 1024, got) == fraction


def test_cards_of_20_to_35_gib_got_larger_defaults_in_0_5_21() -> None:
    # 0.5.19: chunk 2048, cap 24 / 80; from 0.5.21: chunk 4096, cap 48 / 160.
    assert _reserved(RTX_4090, "0.5.19") == 512 + 3072 + 128 + 48 + 42 * 8
    assert _reserved(RTX_4090, "0.5.23") == 512 + 6144 + 128 + 96 + 50 * 8
    assert _reserved(RTX_4090, "0.5.19", tp=4) == 4592
    assert _reserved(RTX_4090, "0.5.21", tp=4) == 7888
    assert sglang_defaults.chunked_prefill_size(RTX_4090 / 1024, "0.5.19") == 2048
    assert sglang_defaults.chunked_prefill_size(RTX_4090 / 1024, "0.5.22") == 4096
    assert sglang_defaults.decode_graph_cap(RTX_4090 / 1024, 1, "0.5.19") == 24
    assert sglang_defaults.decode_graph_cap(RTX_4090 / 1024, 1, "0.5.21") == 48
    assert sglang_defaults.decode_graph_cap(16 * 1024 / 1024, 8, "0.5.23") == 8


def test_attention_dp_reserves_its_padded_graph_buffers() -> None:
    plain = _reserved(H200, tp=8, mla=True)
    with_dp = _reserved(H200, tp=8, mla=True, attn_dp=8)
    # cap 512 x 8 groups x 3, and x 1.5 more as the cap is over 300
    assert with_dp - plain == 512 * 8 * 3 + 512 * 8 * 1.5
    # an MLA model's prefill graph costs a flat 1536 MiB instead of 8 per captured size
    assert plain == 512 + 1.5 * 8192 + 1024 + 2 * 512 + 1536


def test_the_10_gib_floor_comes_before_deepep() -> None:
    # A small user chunk and cap: the sum is under the floor on a card over 60 GiB.
    small = _reserved(H100, chunk=1024, graph_cap=8)
    assert small == 10 * 1024
    # DeepEP's all-to-all buffers (2 GiB) are added after the floor; its prefill-graph delta
    # (1 GiB) before it, where the floor absorbs it.
    assert _reserved(H100, chunk=1024, graph_cap=8, deepep=True) == 10 * 1024 + 2048


def test_disaggregated_workers_reserve_for_their_own_phase() -> None:
    both = _reserved(H100, tp=8)
    prefill = _reserved(H100, tp=8, phase="prefill")
    assert prefill == both - 2 * 512  # no decode graphs on a prefill worker
    # A decode worker: activations for max(cap x drafts, 2048) tokens and no prefill graph
    # (on a 40 GiB card, below the floor of the larger ones).
    assert _reserved(A100_40, tp=8, phase="decode") == 512 + 1.5 * 2048 + 1024 + 2 * 160
    assert _reserved(H100, tp=8, phase="decode") == 10 * 1024
    with_drafts = _reserved(A100_40, tp=8, phase="decode", draft_tokens=16)
    assert with_drafts == 512 + 1.5 * 160 * 16 + 1024 + 2 * 160


def test_releases_0_5_3_to_0_5_13_have_no_prefill_graph_and_no_role_or_deepep_terms() -> None:
    # ServerArgs._handle_gpu_memory_settings in 0.5.3-0.5.6: base + decode graphs + ranks +
    # the attention-DP padding, the 10 GiB floor, then + 2 GiB for a speculative draft.
    old = _reserved(H100, "0.5.4", tp=8, attn_dp=8, mla=True, deepep=True, phase="decode")
    assert old == 512 + 1.5 * 8192 + 1024 + 2 * 512 + 512 * 8 * 3 + 512 * 8 * 1.5
    assert _reserved(H200, "v0.5.6.post2", tp=8, mla=True) == 512 + 1.5 * 8192 + 1024 + 2 * 512
    assert _reserved(H200, "v0.5.6.post2", draft_tokens=3) == 512 + 1.5 * 8192 + 128 + 512 + 2048
    # The draft's 2 GiB come after the floor.
    small = _reserved(H200, "0.5.6", chunk=1024, graph_cap=8, draft_tokens=3)
    assert small == 10 * 1024 + 2048
    # 0.5.3 captured decode graphs up to 16 below TP4 on 20-35 GiB cards; 0.5.4 up to 24.
    assert _reserved(RTX_4090, "0.5.3") == 512 + 1.5 * 2048 + 128 + 2 * 16
    assert _reserved(RTX_4090, "v0.5.3.post3") == 512 + 1.5 * 2048 + 128 + 2 * 16
    assert _reserved(RTX_4090, "0.5.5") == 512 + 1.5 * 2048 + 128 + 2 * 24


def test_release_0_5_1_reserved_a_flat_amount_by_card() -> None:
    # (12 + TP x PP / 2) GiB on a 141 GiB card, + 4 GiB with attention DP.
    assert _reserved(H200, "v0.5.1.post3", tp=8) == 16 * 1024
    assert _reserved(H200, "0.5.1", tp=8, attn_dp=8) == 20 * 1024
    assert _reserved(H100, "0.5.1", tp=2) == (9.5 + 1) * 1024
    assert _reserved(RTX_4090, "0.5.1", tp=1) == 2.9 * 1024
    assert sglang_defaults.decode_graph_cap(H200 / 1024, 8, "0.5.1") == 160


def test_the_prefill_graph_runs_where_each_release_captures_one() -> None:
    dense = 512 + 1.5 * 8192 + 128 + 2 * 256  # H100 TP1: 13440 before any prefill graph
    graph = 58 * 8
    # 0.5.19 on NVIDIA: the breakable graph, off with PP only.
    assert _reserved(H100, "0.5.19") == dense + graph
    assert _reserved(H100, "0.5.19", pp=2) == dense + 128
    # 0.5.14 (torch.compile piecewise by default): off with attention DP, DeepEP and PD.
    assert _reserved(H100, "0.5.14") == dense + graph
    adp = _reserved(H100, "0.5.14", tp=8, attn_dp=8, mla=True)
    assert adp == 512 + 1.5 * 8192 + 1024 + 2 * 512 + 512 * 8 * 4.5
    assert _reserved(H100, "0.5.14", phase="prefill") == dense
    # No DeepEP all-to-all reserve before 0.5.19.
    assert _reserved(H100, "0.5.14", tp=8, deepep=True) == 512 + 1.5 * 8192 + 1024 + 2 * 512
    # On AMD from 0.5.19: the piecewise graph again, off with attention DP.
    amd = _reserved(H100, "0.5.23", tp=8, attn_dp=8, mla=True, amd=True)
    assert amd == 512 + 1.5 * 8192 + 1024 + 2 * 512 + 512 * 8 * 4.5


def test_deploy_renders_the_engines_reserve_but_for_the_attention_dp_term() -> None:
    h200, h100 = find_gpu("H200"), find_gpu("H100")
    model = catalog_model("deepseek-r1")
    assert model is not None
    adp8 = Parallelism(tp=8, ep=8, attn_dp=8)
    gib = h200.memory_gib * 1024
    engine = default_memory_fraction("sglang", h200, adp8, "0.5.23", mla=True, engine_rule=True)
    assert engine == round((gib - (16384 + 18432)) / gib, 3)
    rendered = default_memory_fraction("sglang", h200, adp8, "0.5.23", mla=True)
    assert rendered == round((gib - 16384) / gib, 3)
    memory = estimate(model, h200, "sglang", adp8, context=32768, engine_version="0.5.23")
    assert memory.memory_fraction == rendered
    # SGLang's own default for 16 attention-DP groups on 80 GB cards: too little for the weights
    # (4 x 16 x 512 x 1.5 MiB of padding alone), where LMSYS ran 32 and 72 groups at 0.82-0.835.
    wide = Parallelism(tp=16, ep=16, attn_dp=16)
    assert default_memory_fraction("sglang", h100, wide, mla=True, engine_rule=True) < 0.35
    assert default_memory_fraction("sglang", h100, wide, mla=True, deepep=True) > 0.7


def test_each_pool_of_a_disaggregated_plan_gets_its_roles_reserve() -> None:
    from orchestrator.planning.build import build_plan
    from orchestrator.planning.request import PlanRequest
    from orchestrator.resources import profiles_dir

    plan = build_plan(
        PlanRequest(
            model="deepseek-v3",
            engine="sglang",
            disagg=True,
            cluster=profiles_dir() / "clusters" / "twelve-node-h100-ib.yaml",
            prefill_gpus=32,
            decode_gpus=64,
            goal="throughput",
        )
    )
    h100 = find_gpu("H100")
    fractions = {}
    for name in ("prefill", "decode"):
        role = plan.role(name)
        assert role is not None and role.memory is not None
        expected = default_memory_fraction(
            "sglang", h100, role.parallelism, mla=True, phase=name, deepep=True
        )
        assert role.memory.memory_fraction == expected
        fractions[name] = expected
    # The decode pool has no prefill graphs and no chunk of prompt activations to hold; LMSYS
    # ran these pools at 0.82 (prefill) and 0.835 (decode).
    assert fractions["decode"] > fractions["prefill"] > 0.7
