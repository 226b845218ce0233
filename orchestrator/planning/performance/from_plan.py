"""The prediction for a deployment `deploy` planned, at any lengths and load: `deploy bench`
prints it beside each measured level, and the simulator serves at it."""

from __future__ import annotations

from orchestrator.plan import Plan, Prediction
from orchestrator.planning.performance.serving import Forecast, Traffic, forecast
from orchestrator.planning.performance.steps import Instance

GIB = 2**30


def instance_of(plan: Plan) -> tuple[Instance, int] | None:
    """The serving role (decode when disaggregated) as an `Instance`, and its replica count.

    The model is found by what the plan recorded (its directory, or its Hub id at its
    revision), never by the short name; a model or GPU that cannot be found is an error."""
    from orchestrator.hardware.gpus import find_gpu
    from orchestrator.models.lookup import find_model
    from orchestrator.planning.memory.estimate import default_max_num_batched_tokens
    from orchestrator.planning.performance.engine_args import (
        batched_tokens,
        cuda_graph_max_bs,
        eager_mode,
        speculative_tokens,
        stream_interval,
    )

    role = plan.role("serve") or plan.role("decode")
    if role is None or not role.replicas:
        return None
    memory = role.memory or plan.memory
    model = find_model(plan.model.local_path or plan.model.id, plan.model.revision)
    gpu = find_gpu(plan.hardware.gpu)
    args = " ".join(plan.request.engine_args)
    budget = next(
        (int(item.value) for item in plan.adjustments if item.knob == "max_num_batched_tokens"),
        batched_tokens(args)
        or default_max_num_batched_tokens(plan.engine.name, gpu, plan.engine.version),
    )
    inst = Instance(
        model=model,
        gpu=gpu,
        engine=plan.engine.name,
        par=role.parallelism,
        weight_bytes_per_gpu=memory.weights_gib_per_gpu * GIB,
        kv_bytes_per_token_per_gpu=memory.kv_bytes_per_token_per_gpu,
        nnodes=len(role.replicas[0].slices),
        interconnect=plan.hardware.interconnect,
        fabric=plan.hardware.fabric,
        quantization=plan.request.quantization,
        engine_version=plan.engine.version,
        # What the user's engine arguments change about a step (the resolver reads the same).
        eager=eager_mode(args) or any(item.knob == "enforce_eager" for item in plan.adjustments),
        max_num_batched_tokens=budget,
        speculative_tokens=speculative_tokens(args),
        stream_interval=stream_interval(args),
        cuda_graph_max_bs=cuda_graph_max_bs(args),
    )
    return inst, len(role.replicas)


def predict_plan(
    plan: Plan,
    *,
    isl: float,
    osl: float,
    concurrency: int | None = None,
    request_rate: float | None = None,
) -> Forecast | None:
    if plan.cpu is not None:
        # CPU nodes: vLLM's CPU build has its own model (performance/cpu.py).
        from orchestrator.planning.performance.cpu import predict_cpu_plan

        cpu = predict_cpu_plan(
            plan, isl=isl, osl=osl, concurrency=concurrency, request_rate=request_rate
        )
        return None if cpu is None else Forecast(**cpu.model_dump(), batch=cpu.max_concurrency)
    found = instance_of(plan)
    if found is None:
        return None
    inst, replicas = found
    memory = plan.memory
    traffic = Traffic(
        isl=max(1.0, isl), osl=max(1.0, osl), concurrency=concurrency, request_rate=request_rate
    )
    return forecast(
        inst, traffic, kv_tokens=memory.kv_cache_tokens, context=memory.context, replicas=replicas
    )


def as_prediction(result: Forecast) -> Prediction:
    return Prediction(
        ttft_ms=result.ttft_ms,
        tpot_ms=result.tpot_ms,
        output_tokens_per_s=result.output_tokens_per_s,
        input_tokens_per_s=result.input_tokens_per_s,
        output_tokens_per_s_per_gpu=result.output_tokens_per_s_per_gpu,
        requests_per_s=result.requests_per_s,
        max_concurrency=result.max_concurrency,
        bound=result.bound,
    )
