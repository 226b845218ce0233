"""`PlanRequest`: what a user asked for, as typed, before anything is looked up.

`plan`, `render` and `up` all build one from their options and hand it to
`orchestrator.planning.build.build_plan`, the one core call that returns a `Plan`.
"""

# No `from __future__ import annotations` in this module: pydantic would then evaluate each
# field's annotation string when the class is created, a quarter of this import's cost on every
# `deploy` run.

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from orchestrator.base import Strict
from orchestrator.plan import EngineName, Goal


class PlanRequest(Strict):
    model: str = Field(description="alias, Hugging Face id, or a local directory")
    revision: str | None = Field(default=None, description="Hub branch, tag or commit")
    gpus: str | None = None
    # CPU nodes for vLLM's CPU build: `all`, `16` or `16:64g` (orchestrator.hardware.cpu).
    cpus: str | None = Field(default=None, max_length=64)
    nodes: int | None = None
    cluster: Path | None = None
    engine: EngineName = "vllm"
    engine_version: str | None = None
    goal: Goal = "balanced"
    context: int | None = None
    concurrency: int | None = None
    quantization: str | None = None
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    # Cache bytes per token of a model whose cache deploy cannot size from its config.
    cache_bytes_per_token: int | None = Field(default=None, gt=0, le=2**24)
    gpu_memory_utilization: float | None = None
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    ep: int | None = None
    attn_dp: int | None = None
    max_gpus: int | None = None
    disagg: bool = False
    prefill_gpus: int | None = None
    decode_gpus: int | None = None
    name: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    engine_args: list[str] = []
    public: bool = False
    api_key_env: str | None = None
    kv_connector: Literal["nixl", "mooncake"] | None = None
    distributed_backend: Literal["mp", "ray"] = "mp"
    isl: int | None = None
    osl: int | None = None
    request_rate: float | None = None
    slo: str | None = Field(default=None, description="e.g. ttft=2s,tpot=50ms")
    # GiB/s a node downloads the checkpoint at when its Hugging Face cache lacks it (start
    # periods cover it); 0: weights are pre-fetched. None: the stated default.
    download_rate: float | None = Field(default=None, ge=0)

    @field_validator("model")
    @classmethod
    def _bounded_model(cls, value: str) -> str:
        from orchestrator.input_limits import validate_model_reference

        return validate_model_reference(value)

    @field_validator("gpu_memory_utilization", "request_rate", "download_rate", mode="before")
    @classmethod
    def _finite(cls, value: Any, info: ValidationInfo) -> Any:
        from orchestrator.input_limits import check_finite

        if isinstance(value, float):
            check_finite(value, "--" + (info.field_name or "").replace("_", "-"))
        return value

    @field_validator("nodes")
    @classmethod
    def _bounded_nodes(cls, value: int | None) -> int | None:
        from orchestrator.input_limits import check_node_count

        return None if value is None else check_node_count(value)

    @field_validator("api_key_env")
    @classmethod
    def _valid_variable(cls, value: str | None) -> str | None:
        from orchestrator.secrets_policy import validate_variable_name

        return None if value is None else validate_variable_name(value)

    @classmethod
    def from_options(cls, **options: Any) -> "PlanRequest":
        """Build from click options, ignoring the ones that are not part of a plan."""
        fields = cls.model_fields
        values = {key: value for key, value in options.items() if key in fields}
        if "engine_args" in values:
            values["engine_args"] = list(values["engine_args"] or [])
        return cls(**values)

    def pins(self) -> dict[str, int]:
        names = ("tp", "pp", "dp", "ep", "attn_dp")
        return {name: value for name in names if (value := getattr(self, name)) is not None}
