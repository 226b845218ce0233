"""`build_plan`: the one core call of `plan`, `render` and `up`.

It looks up the model, the hardware and the engine version, settles the context, runs the
resolver and fills a `Plan`. A plan that does not fit is returned with `fits=False` and a
`suggestion`; callers that would start engines refuse it themselves.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.engine_versions import image_for, resolve_version
from orchestrator.errors import InputError, PlanError
from orchestrator.hardware.model import Cluster
from orchestrator.naming import check_name, deployment_name
from orchestrator.plan import (
    EngineSummary,
    HardwareSummary,
    ModelSummary,
    NodeSummary,
    Plan,
    Request,
    Role,
)
from orchestrator.request import PlanRequest
from orchestrator.resolver import resolve
from orchestrator.resolver_context import Workload
from orchestrator.schema import ModelProfile
from orchestrator.secrets_policy import exposure_warnings

DEFAULT_CONTEXT = 32768


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
    if not request.disagg and (request.prefill_gpus or request.decode_gpus):
        raise InputError("--prefill-gpus/--decode-gpus size disaggregated pools", "add --disagg")


def workload_for(request: PlanRequest, model: ModelProfile, cluster: Cluster) -> Workload:
    from orchestrator.memory import estimate

    engine_version = resolve_version(request.engine, request.engine_version)
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
    )


def build_plan(request: PlanRequest) -> Plan:
    """Plan `request`: look everything up, resolve parallelism, fill the `Plan`."""
    from orchestrator.catalog import find_model
    from orchestrator.hardware import resolve_cluster

    _check_numbers(request)
    if request.name is not None:
        check_name(request.name)
    model = find_model(request.model)
    work = workload_for(
        request, model, resolve_cluster(request.gpus, request.nodes, request.cluster)
    )
    pools = {
        key: value
        for key, value in (("prefill", request.prefill_gpus), ("decode", request.decode_gpus))
        if value is not None
    }
    resolution = resolve(work, disagg=request.disagg, pools=pools)
    return Plan(
        name=deployment_name(model.name, request.name),
        model=model_summary(model),
        engine=EngineSummary(
            name=work.engine,
            version=work.engine_version,
            image=image_for(work.engine, work.engine_version),
        ),
        hardware=hardware_summary(work.cluster),
        request=Request(
            goal=request.goal,
            context=work.context,
            concurrency=request.concurrency,
            quantization=request.quantization,
            kv_cache_dtype=request.kv_cache_dtype,
            gpu_memory_utilization=request.gpu_memory_utilization,
            disagg=request.disagg,
            pins=work.pins,
            engine_args=list(request.engine_args),
            public=request.public,
            api_key_env=request.api_key_env,
            kv_connector=request.kv_connector,
            distributed_backend=request.distributed_backend,
        ),
        parallelism=resolution.parallelism,
        roles=resolution.roles,
        memory=resolution.memory,
        fits=resolution.fits,
        rationale=resolution.rationale,
        alternatives=resolution.alternatives,
        warnings=[
            *resolution.warnings,
            *_backend_warnings(request, resolution.roles),
            *exposure_warnings(request.public, request.api_key_env),
        ],
        suggestion=resolution.suggestion,
    )


def _backend_warnings(request: PlanRequest, roles: list[Role]) -> list[str]:
    spans_nodes = any(len(replica.slices) > 1 for role in roles for replica in role.replicas)
    if request.distributed_backend == "ray" and not spans_nodes:
        return [
            "--distributed-backend ray applies to instances that span nodes; every instance "
            "here fits in one node and runs on vLLM's own multiprocessing"
        ]
    return []


def model_summary(model: ModelProfile) -> ModelSummary:
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
