"""The engine simulator: vLLM, SGLang, their routers and nginx, without GPUs.

`deploy up --simulate` runs the same services with the image `deploy-sim:latest` (built by
`docker/build-sim-image.sh`) in place of the engine image; the image's entry point is
`python3 -m orchestrator.sim`, and it also provides `vllm`, `sglang`, `vllm-router`, `smg`,
`nginx`, `python3 -m sglang.launch_server` and `python3 -m sglang_router.launch_router`, so a
service's command runs unchanged. The simulator imitates what a supervisor and a client meet:
connections refused while weights load, SGLang's 503 warmup, the OpenAI endpoints with
token timing, `/metrics` under each engine's names, `--api-key`, headless nodes, PD routers.

Behaviour comes from the environment (see `settings.Behaviour.from_env`):
  DEPLOY_SIM_LOAD_SECONDS    weight loading (port refused); default from DEPLOY_SIM_WEIGHTS_GIB
                             (2 s per 100 GiB, 0.5 to 6 s), else 2 s
  DEPLOY_SIM_WARMUP_SECONDS  SGLang warmup (/health 503); default 1 s for SGLang, 0 for vLLM
  DEPLOY_SIM_TTFT_MS, DEPLOY_SIM_TPOT_MS   token timing (default 50 and 10 ms)
  DEPLOY_SIM_MAX_CONCURRENCY requests served at once; the others queue (default: unlimited)
  DEPLOY_SIM_EOS_TOKENS      output length without ignore_eos (default 128)
  DEPLOY_SIM_FAULT           crash-after=S | hang | hang-after=S | never-ready | exit-on-start
                             (comma-separated; times are seconds since the program started)

In-process API for tests (the only module that needs aiohttp is imported on use):

    from orchestrator.sim.server import start_in_thread, start_command_in_thread

    with start_in_thread("vllm", ttft_ms=20, tpot_ms=5) as sim:    # port=0 picks a free port
        sim.url        # "http://127.0.0.1:PORT"; also .port, .ports, .logs, .exit_code, .alive
    router = start_command_in_thread(
        ["vllm-router", "--worker-urls", a.url, b.url, "--port", "0"])
    router.stop()      # returns the exit code (0 after a stop, 1 after a crash fault)

`start_in_thread(engine, *, port, host, model, served_model_name, ttft_ms, tpot_ms,
load_seconds, warmup_seconds, fault, api_key, max_concurrency, eos_tokens, extra_args,
wait_ready=True, timeout, echo)` returns once the server is ready unless `wait_ready=False`
(to watch it load: the port is bound at once and refuses connections until loading ends).

This package imports nothing else from `orchestrator` and needs only the standard library and
aiohttp, so the image carries it alone.
"""
