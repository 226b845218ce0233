"""`build_plan`: the one core call of `plan`, `render` and `up`.

It looks up the model, the hardware and the engine version, settles the context, runs the
resolver and fills a `Plan`. A plan that does not fit is returned with `fits=False` and a
`suggestion`; callers that would start engines refuse it themselves.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.engines.versions import image_for, resolve_version
from orchestrator.errors import InputError, PlanError
from orchestrator.hardware.model import Cluster
from orchestrator.naming import check_name, deployment_name
from orchestrator.plan import (
    EngineSummary,
    HardwareSummary,
    ModelSummary,
    NodeSummary,
    Parallelism,
    Plan,
    Reason,
    Request,
    Role,
    layout_of,
)
from orchestrator.planning.request import PlanRequest
from orchestrator.planning.resolver import resolve
from orchestrator.planning.resolver.context import Workload
from orchestrator.schema import ModelProfile
from orchestrator.secrets_policy import exposure_warnings

DEFAULT_CONTEXT = 32768
# Flags by which a user turns CUDA graphs off or changes how they are built (a user's
# --engine-arg wins over the eager-mode knob).
EAGER_FLAGS = ("--enforce-eager", "--disable-cuda-graph", "--compilation-config", "-O")


def settle_context(model: ModelProfile, context: int | None) -> int:
    """The request's context: default min(model max, 32768); never above the model's max."""
    if context is None:
        return min(model.max_context, DEFAULT_CONTEXT)
    if context < 1:
        raise PlanError(f"--context {context} is not a token count", "use --context 1 or more")
    if context > model.max_context:
        raise PlanError(
            f"--context {context} is longer than {model.name}'s maximum of {model.max_context} tokens",
            f"use --context {model.max_context} or less",
        )
    return context


def _check_numbers(request: PlanRequest) -> None:
    if request.distributed_backend == "ray" and request.engine != "vllm":
        raise InputError(
            "--distributed-backend ray is a vLLM option; SGLang spans nodes on its own",
            "drop --distributed-backend or use --engine vllm",
        )
    if request.concurrency is not None and request.concurrency < 1:
        raise InputError(
            f"--concurrency {request.concurrency} is not a request count",
            "use --concurrency 1 or more",
        )
    if request.max_gpus is not None and request.max_gpus < 1:
        raise InputError(f"--max-gpus {request.max_gpus} is not a GPU count", "use 1 or more")
    utilization = request.gpu_memory_utilization
    if utilization is not None and not 0 < utilization <= 1:
        raise InputError(
            f"--gpu-memory-utilization {utilization} is out of range", "use a value in (0, 1]"
        )
    for name, value in (("--isl", request.isl), ("--osl", request.osl)):
        if value is not None and value < 1:
            raise InputError(f"{name} {value} is not a token count", f"use {name} 1 or more")
    if request.request_rate is not None and request.request_rate <= 0:
        raise InputError(
            f"--request-rate {request.request_rate} is not a rate", "use a positive requests/s"
        )
    if request.request_rate is not None and request.concurrency is not None:
        raise InputError("--concurrency and --request-rate are two loads", "give one of them")
    if not request.disagg and (request.prefill_gpus or request.decode_gpus):
        raise InputError("--prefill-gpus/--decode-gpus size disaggregated pools", "add --disagg")


def workload_for(request: PlanRequest, model: ModelProfile, cluster: Cluster) -> Workload:
    from orchestrator.planning.memory.estimate import estimate
    from orchestrator.planning.performance.engine_args import (
        BATCHED_TOKEN_FLAGS,
        batched_tokens,
        cuda_graph_max_bs,
        speculative_tokens,
        stream_interval,
    )
    from orchestrator.planning.slo import parse_slo

    engine_version = resolve_version(request.engine, request.engine_version)
    slo_ttft_ms, slo_tpot_ms = parse_slo(request.slo)
    return Workload(
        model=model,
        cluster=cluster,
        engine=request.engine,
        engine_version=engine_version,
        goal=request.goal,
        context=settle_context(model, request.context),
        memory_fn=estimate,
        concurrency=request.concurrency,
        quantization=request.quantization,
        kv_cache_dtype=request.kv_cache_dtype,
        memory_fraction=request.gpu_memory_utilization,
        pins=request.pins(),
        max_gpus=request.max_gpus,
        isl=request.isl,
        osl=request.osl,
        request_rate=request.request_rate,
        slo_ttft_ms=slo_ttft_ms,
        slo_tpot_ms=slo_tpot_ms,
        context_asked=request.context is not None,
        max_num_batched_tokens=batched_tokens(" ".join(request.engine_args)),
        batched_tokens_asked=any(
            arg.split("=")[0] in BATCHED_TOKEN_FLAGS for arg in request.engine_args
        ),
        eager_asked=any(arg.split("=")[0] in EAGER_FLAGS for arg in request.engine_args),
        speculative_tokens=speculative_tokens(" ".join(request.engine_args)),
        stream_interval=stream_interval(" ".join(request.engine_args)),
        cuda_graph_max_bs=cuda_graph_max_bs(" ".join(request.engine_args)),
    )


def build_plan(request: PlanRequest) -> Plan:
    """Plan `request`: look everything up, resolve parallelism, fill the `Plan`."""
    from orchestrator.hardware import resolve_cluster
    from orchestrator.models.lookup import find_model
    from orchestrator.models.speculative import asks_for_speculation, with_mtp_loaded

    _check_numbers(request)
    if request.name is not None:
        check_name(request.name)
    model = find_model(request.model, request.revision)
    if request.cache_bytes_per_token is not None:
        # The user's figure for a cache the config cannot size; the memory model cites it.
        model = model.model_copy(
            update={
                "cache_bytes_per_token": request.cache_bytes_per_token,
                "notes": (
                    *model.notes,
                    f"cache sized from --cache-bytes-per-token {request.cache_bytes_per_token}",
                ),
            }
        )
    speculative = asks_for_speculation(request.engine_args)
    if speculative:
        model = with_mtp_loaded(model)
    cluster = resolve_cluster(request.gpus, request.nodes, request.cluster, request.cpus)
    cpu_plan = None
    if cluster.is_cpu:
        # CPU nodes: vLLM's CPU build, sized and laid out by planning/cpu.
        from orchestrator.planning.cpu.plan import plan_on_cpu

        request, work, model_warnings, resolution, cpu_plan = plan_on_cpu(request, model, cluster)
    else:
        work = workload_for(request, model, cluster)
        model_warnings = check_model_runs(work, speculative=speculative)
        pools = {
            key: value
            for key, value in (("prefill", request.prefill_gpus), ("decode", request.decode_gpus))
            if value is not None
        }
        resolution = resolve(work, disagg=request.disagg, pools=pools)
    # Near-fit may have shortened the context or chosen an FP8 KV cache: the plan (and the
    # rendered flags) carry what was sized.
    planned = resolution.work or work
    hardware = hardware_summary(work.cluster)
    return Plan(
        name=deployment_name(model.name, request.name),
        model=model_summary(model),
        engine=EngineSummary(
            name=work.engine,
            version=work.engine_version,
            image=cpu_image(work.engine_version)
            if cpu_plan is not None
            else image_for(work.engine, work.engine_version),
        ),
        hardware=hardware,
        request=Request(
            goal=request.goal,
            context=planned.context,
            concurrency=request.concurrency,
            quantization=request.quantization,
            kv_cache_dtype=planned.kv_cache_dtype,  # type: ignore[arg-type]
            gpu_memory_utilization=request.gpu_memory_utilization,
            disagg=request.disagg,
            pins=work.pins,
            engine_args=list(request.engine_args),
            public=request.public,
            api_key_env=request.api_key_env,
            kv_connector=request.kv_connector,
            distributed_backend=request.distributed_backend,
            isl=request.isl,
            osl=request.osl,
            request_rate=request.request_rate,
            slo_ttft_ms=work.slo_ttft_ms,
            slo_tpot_ms=work.slo_tpot_ms,
            download_gib_per_s=request.download_rate,
            port=request.port,
        ),
        parallelism=resolution.parallelism,
        roles=resolution.roles,
        memory=resolution.memory,
        fits=resolution.fits,
        rationale=[*resolution.rationale, *_calibration_line(work)],
        alternatives=resolution.alternatives,
        warnings=[
            *work.cluster.nodes[0].gpu_assumptions,
            *model_warnings,
            *resolution.warnings,
            *_backend_warnings(request, resolution.roles),
            *exposure_warnings(request.public, request.api_key_env),
        ],
        suggestion=resolution.suggestion,
        prediction=resolution.prediction,
        adjustments=resolution.adjustments,
        cpu=cpu_plan,
        layout=layout_of(resolution.roles, hardware.node_list, request.public),
    )


def cpu_image(version: str) -> str:
    from orchestrator.planning.cpu import image

    return image(version)


def check_model_runs(work: Workload, *, speculative: bool = False) -> list[str]:
    """Refuse an architecture or weight format the target cannot run; the model's warnings."""
    from orchestrator.hardware.gpus import load_gpus
    from orchestrator.models.engine_support import check_loadable, check_quantization
    from orchestrator.models.quantization import check_runs, served_format

    model = work.model
    loading = check_loadable(model, work.engine, work.engine_version)
    fmt = served_format(model.checkpoint, work.quantization)
    if fmt == model.checkpoint.format:
        check_quantization(model, work.engine, work.engine_version)
    check_runs(fmt, work.gpu, list(load_gpus().values()))
    warnings = [*model.warnings, *loading]
    if model.mtp_params and speculative:
        warnings.append(
            f"speculative decoding loads the checkpoint's MTP layers as the draft: their "
            f"{model.mtp_params / 1e9:.1f}B params and {model.mtp_layers or 1} more layer(s) "
            "of KV are included"
        )
    elif model.mtp_params:
        warnings.append(
            f"the checkpoint's MTP layers ({model.mtp_params / 1e9:.1f}B params) are not "
            "loaded: they serve only as a speculative-decoding draft, which adds their weights "
            "and one more layer of KV"
        )
    return warnings


def _calibration_line(work: Workload) -> list[Reason]:
    """The reason citing the calibration the predictions were scaled by (`deploy calibrate`)."""
    from orchestrator.planning.calibration import calibration_for

    found = calibration_for(work.gpu.name, work.engine, work.engine_version)
    if found is None:
        return []
    return [Reason(decision="prediction", choice="calibrated", why=found.citation())]


def _backend_warnings(request: PlanRequest, roles: list[Role]) -> list[str]:
    spans_nodes = any(len(replica.slices) > 1 for role in roles for replica in role.replicas)
    if request.distributed_backend == "ray" and not spans_nodes:
        return [
            "--distributed-backend ray applies to instances that span nodes; every instance "
            "here fits in one node and runs on vLLM's own multiprocessing"
        ]
    return []


def model_summary(model: ModelProfile) -> ModelSummary:
    """What renderers need of the model, so that none of them looks it up again."""
    from orchestrator.planning.memory.weights import weight_bytes_per_gpu

    # Absolute: the directory is bind-mounted from compose files that live elsewhere, and
    # compose resolves relative sources against the compose file's own directory.
    local = (
        str(Path(model.source[len("local:") :]).resolve())
        if model.source and model.source.startswith("local:")
        else None
    )
    return ModelSummary(
        id=local or model.hf_id,
        name=model.name,
        params_total=model.params_total,
        params_active=model.params_active,
        attention=model.attention,
        is_moe=model.is_moe,
        max_context=model.max_context,
        local_path=local,
        checkpoint_format=model.checkpoint.format,
        source=model.origin,
        revision=model.revision,
        # The checkpoint in its own format (before any online quantization): what a node
        # without it in its cache downloads.
        checkpoint_bytes=int(weight_bytes_per_gpu(model, Parallelism())),
        routed_experts=model.moe.num_experts if model.moe is not None else None,
    )


def hardware_summary(cluster: Cluster) -> HardwareSummary:
    first = cluster.nodes[0]
    return HardwareSummary(
        gpu=cluster.gpu.name,
        gpu_memory_gib=cluster.gpu.memory_gib,
        gpus_per_node=cluster.gpus_per_node,
        nodes=len(cluster.nodes),
        interconnect=first.interconnect,
        fabric=cluster.fabric,
        compute_capability=cluster.gpu.compute_capability,
        gpu_products=[name.replace(" ", "-") for name in cluster.gpu.nvml_names],
        node_list=[
            NodeSummary(
                name=node.name,
                address=node.address,
                docker=node.docker,
                gpus=node.gpu_count,
                network_interface=node.network_interface,
                rdma_devices=list(node.rdma_devices),
            )
            for node in cluster.nodes
        ],
    )
