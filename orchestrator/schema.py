"""Pydantic schemas of the catalog: model profiles and GPU specs.

Every profile file under `profiles/` is validated against these classes with
`extra="forbid"`, so a misspelt key is an error that names the file and the field.
Loading and name matching live in `catalog.py`; arithmetic lives in `memory.py`.
"""

# No `from __future__ import annotations` in this module: pydantic would then evaluate each
# field's annotation string when the class is created, a quarter of this import's cost on every
# `deploy` run.

from typing import Literal

from pydantic import Field

from orchestrator.base import Frozen

AttentionKind = Literal["mha", "gqa", "mla"]
WeightFormat = Literal["bf16", "fp16", "fp32", "fp8", "mxfp4", "nvfp4", "int8", "int4"]
ModelSource = Literal["catalog", "hub", "local"]
Interconnect = Literal["nvswitch", "nvlink-pairs", "pcie"]


class MoE(Frozen):
    """Mixture-of-experts shape."""

    num_experts: int = Field(gt=0, description="routed experts per MoE layer")
    experts_per_token: int = Field(gt=0)
    moe_intermediate_size: int = Field(gt=0)
    shared_experts: int = Field(default=0, ge=0)
    # Leading layers that stay dense (DeepSeek first_k_dense_replace); 0 when every layer is MoE.
    first_dense_layers: int = Field(default=0, ge=0)
    # Every n-th layer is MoE (Llama 4 Maverick interleaves dense and MoE layers).
    moe_layer_step: int = Field(default=1, ge=1)
    # MoE layers when a per-layer pattern places them (Nemotron-H `E` blocks); None: the rule
    # above. Weight matrices per expert: 3 for gated (SwiGLU) experts, 2 for squared-ReLU ones.
    moe_layers: int | None = Field(default=None, ge=0)
    matrices_per_expert: int = Field(default=3, ge=1, le=3)


class HeadShape(Frozen):
    """KV heads of one kind of attention layer, when it differs from the model's defaults."""

    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    v_head_dim: int = Field(gt=0)


class LocalAttention(Frozen):
    """Layers that attend to a bounded window (sliding window or chunked local attention)."""

    kind: Literal["sliding", "chunked"]
    window: int = Field(gt=0, description="tokens kept per request in these layers")
    layers: int = Field(ge=0, description="how many layers are local; the rest are full")
    # Heads of the local layers when they differ from the model's (MiMo-V2 `swa_*` fields).
    heads: HeadShape | None = None


class MambaState(Frozen):
    """Mamba2 (SSM) layers: a convolution window and a recurrent state per sequence, no KV."""

    layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    state_size: int = Field(gt=0)
    n_groups: int = Field(default=1, gt=0)
    conv_kernel: int = Field(default=4, gt=0)
    # Bytes of one recurrent-state element (mamba_ssm_cache_dtype; float32 by default).
    state_dtype_bytes: int = Field(default=4, gt=0)


class CompressedAttention(Frozen):
    """DeepSeek-V4 attention: every layer keeps a sliding window of raw entries; compressed
    layers also keep one entry per `ratio` tokens (ratio 4 layers with an indexer key)."""

    # (compression ratio, layers) pairs; ratio 1 means a window-only layer.
    layers_by_ratio: tuple[tuple[int, int], ...]
    entry_bytes: int = Field(gt=0, description="bytes of one cache entry (one KV head)")
    head_dim: int = Field(default=512, gt=0)
    window: int = Field(gt=0)
    index_head_dim: int = Field(default=0, ge=0)
    indexed_ratio: int = Field(default=4, gt=0, description="the ratio whose layers are indexed")

    def layers_at(self, ratio: int) -> int:
        return sum(count for each, count in self.layers_by_ratio if each == ratio)

    @property
    def layers(self) -> int:
        return sum(count for _, count in self.layers_by_ratio)


class QuantScheme(Frozen):
    """The quantization a checkpoint declares (quantization_config / hf_quant_config.json)."""

    # The engines' name of the method: fp8, fbgemm_fp8, compressed-tensors, awq, gptq, modelopt,
    # modelopt_fp4, mxfp4, blockwise_int8, w8a8_int8, bitsandbytes.
    method: str
    weight_bits: int = Field(gt=0, le=16)
    # Weights that share one scale along the input dimension; None: one scale per channel or
    # per tensor (negligible per weight).
    group_size: int | None = Field(default=None, gt=0)
    scale_bytes: float = Field(default=2.0, ge=0, description="bytes of one group's scale")
    zero_point: bool = False
    activation_bits: int | None = Field(default=None, gt=0)
    # Module name patterns the config leaves at 16 bit (ignore / modules_to_not_convert ...).
    unquantized_modules: tuple[str, ...] = ()


class Checkpoint(Frozen):
    """How the published weights are stored."""

    format: WeightFormat
    # Block-scaled FP8 (DeepSeek style): (out, in) block size of the scales.
    block_size: tuple[int, int] | None = None
    # Exact bytes of the weight files when known (model.safetensors.index.json total_size).
    bytes: int | None = Field(default=None, gt=0)
    # Parameters kept in BF16 inside a quantized checkpoint (embeddings, attention, router...).
    bf16_params: int | None = Field(default=None, ge=0)
    scheme: QuantScheme | None = None
    # The routed experts' format when it differs from the rest (DeepSeek-V4: FP4 experts).
    expert_format: WeightFormat | None = None


class LinearAttention(Frozen):
    """Linear-attention layers (Gated DeltaNet in Qwen3-Next / Qwen3.5): a fixed state per
    sequence instead of a KV entry per token."""

    layers: int = Field(gt=0)
    num_key_heads: int = Field(gt=0)
    num_value_heads: int = Field(gt=0)
    key_head_dim: int = Field(gt=0)
    value_head_dim: int = Field(gt=0)
    conv_kernel: int = Field(default=4, gt=0)
    # Bytes of one recurrent-state element when the config pins it (mamba_ssm_dtype).
    state_dtype_bytes: int | None = Field(default=None, gt=0)


class SparseIndexer(Frozen):
    """DeepSeek sparse attention (V3.2): a lightning indexer keeps its own key per token."""

    head_dim: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    top_k: int = Field(gt=0, description="tokens each query attends to")
    # GQA models with an indexer on some layers (MiniMax-M3): indexed layers and the key heads
    # each keeps per token (BF16). None: the MLA rule (one FP8 key on every layer).
    layers: int | None = Field(default=None, ge=0)
    key_heads: int | None = Field(default=None, gt=0)


class ModelProfile(Frozen):
    """Facts about one model, enough to size memory and choose parallelism."""

    name: str = Field(description="short canonical alias, e.g. deepseek-r1")
    hf_id: str = Field(description="Hugging Face id, e.g. deepseek-ai/DeepSeek-R1")
    aliases: tuple[str, ...] = ()
    family: str
    architecture: str = Field(description="config.json architectures[0]")
    attention: AttentionKind
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    v_head_dim: int | None = Field(default=None, gt=0)
    kv_lora_rank: int | None = Field(default=None, gt=0)
    qk_rope_head_dim: int | None = Field(default=None, gt=0)
    intermediate_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_context: int = Field(gt=0, description="max_position_embeddings")
    tie_word_embeddings: bool = False
    moe: MoE | None = None
    local_attention: LocalAttention | None = None
    params_total: int = Field(gt=0, description="parameters of the served model (no MTP)")
    params_active: int = Field(gt=0)
    mtp_params: int = Field(default=0, ge=0, description="draft/MTP module, loaded only with it")
    mtp_layers: int = Field(default=0, ge=0, description="MTP layers in the checkpoint")
    checkpoint: Checkpoint
    # Largest TP the model's kernels accept, when lower than the head arithmetic allows.
    max_tp: int | None = Field(default=None, gt=0)
    multimodal: bool = False
    notes: tuple[str, ...] = ()
    # Where the facts came from (a URL or "local:<path>").
    source: str | None = None
    linear_attention: LinearAttention | None = None
    indexer: SparseIndexer | None = None
    # How the profile was found, and the Hub commit it was read at.
    origin: ModelSource = "catalog"
    revision: str | None = None
    # What a user should know about how the profile was read (unknown architecture...).
    warnings: tuple[str, ...] = ()
    # Per-layer cache kinds beyond full / local / linear attention.
    mamba: MambaState | None = None
    compressed_attention: CompressedAttention | None = None
    # Heads of the full-attention layers when they differ (Gemma 4 global layers).
    full_attention_heads: HeadShape | None = None
    # Layers that keep no cache of their own (MLP-only blocks, KV-sharing layers).
    cache_free_layers: int = Field(default=0, ge=0)
    # Why the cache cannot be sized from the config (None: it can); the planner refuses such a
    # model unless the user states the bytes per token (`cache_bytes_per_token`).
    unsized_cache: str | None = None
    cache_bytes_per_token: int | None = Field(default=None, gt=0)

    @property
    def is_moe(self) -> bool:
        return self.moe is not None


class NVLink(Frozen):
    generation: int = Field(ge=1)
    bandwidth_gbs: float = Field(gt=0, description="total bidirectional GB/s per GPU")
    links: int = Field(gt=0)
    # GPUs one NVLink domain spans when it crosses nodes (GB200/GB300 NVL72: 72 GPUs on 18
    # trays of 4); None: the domain ends at the node.
    domain_gpus: int | None = Field(default=None, gt=0)
    gpus_per_node: int | None = Field(default=None, gt=0, description="GPUs per tray")


class GpuSpec(Frozen):
    """One GPU model."""

    name: str = Field(description="canonical name, e.g. H100-80GB-SXM")
    aliases: tuple[str, ...] = ()
    # "cpu": the pseudo entry of a CPU node (orchestrator.hardware.cpu), never in the catalog.
    vendor: Literal["nvidia", "amd", "cpu"]
    # Names NVML (or rocm-smi) reports, matched exactly after case folding.
    nvml_names: tuple[str, ...] = ()
    form_factor: Literal["sxm", "pcie", "oam", "nvl"]
    memory_gib: float = Field(
        gt=0,
        description="usable memory, GiB: NVML total minus NVML reserved, which equals the total CUDA reports",
    )
    memory_bandwidth_gbs: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0, description="dense")
    fp8_tflops: float | None = Field(default=None, gt=0, description="dense; None without FP8")
    compute_capability: str | None = None
    pcie_generation: int = Field(ge=3)
    nvlink: NVLink | None = None
    # Weight formats the GPU runs natively (fp8 needs Ada/Hopper or newer, mxfp4 Hopper+ kernels).
    supports_fp8: bool = False
    supports_mxfp4: bool = False
    fp4_tflops: float | None = Field(default=None, gt=0, description="dense FP4; None without")
    int8_tops: float | None = Field(default=None, gt=0, description="dense INT8")
    # Where the figures come from (vendor datasheets), and what was assumed.
    sources: tuple[str, ...] = ()
    # Not from the catalog: built from what NVML reports, its notes name the assumptions.
    assumed: bool = False
    notes: tuple[str, ...] = ()
