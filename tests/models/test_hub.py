"""`deploy` reads Hub repos through the real huggingface_hub client, against the loopback Hub."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from .conftest import Runner
from .fakehub import NO_ACCESS_TOKEN, VALID_TOKEN, FakeHub

# Every model the published recipes name that the catalog does not hold, with hardware it
# fits on (NVFP4 needs Blackwell).
NAMED_MODELS = {
    "deepseek-ai/DeepSeek-R1-0528": "8xH200",
    "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8": "8xH200",
    "nvidia/DeepSeek-R1-FP4": "8xB200",
    "MiniMaxAI/MiniMax-M2": "4xH200",
    "zai-org/GLM-4.6-FP8": "8xH200",
    "Qwen/Qwen3-Next-80B-A3B-Instruct": "4xH100",
    "meta-llama/Meta-Llama-3.1-8B-Instruct": "1xH100",
    "deepseek-ai/DeepSeek-V3.2": "8xH200",
    "google/gemma-3-27b-it": "1xH100",
    "Qwen/Qwen3.5-35B-A3B": "2xH100",
}


def _plan_json(deploy: Runner, *args: str, **kwargs: object) -> dict[str, object]:
    result = deploy("plan", *args, "--json", **kwargs)
    assert result.returncode == 0, result.stderr
    plan: dict[str, object] = json.loads(result.stdout)
    return plan


def _model(plan: dict[str, object]) -> dict[str, object]:
    model = plan["model"]
    assert isinstance(model, dict)
    return model


@pytest.mark.parametrize("repo_id", sorted(NAMED_MODELS))
def test_every_named_model_plans_from_the_hub(repo_id: str, deploy: Runner, hub: FakeHub) -> None:
    plan = _plan_json(deploy, repo_id, "--gpus", NAMED_MODELS[repo_id], token=VALID_TOKEN)
    model = _model(plan)
    assert model["id"] == repo_id
    assert model["source"] == "hub"
    assert model["revision"] == hub.repos[repo_id].commit
    assert plan["fits"] is True


def test_first_fetch_shows_progress_and_downloads_no_weights(deploy: Runner, hub: FakeHub) -> None:
    before = len(list(hub.requests()))
    result = deploy("plan", "MiniMaxAI/MiniMax-M2", "--gpus", "4xH200")
    assert result.returncode == 0, result.stderr
    url = hub.url
    assert result.stderr.splitlines()[0] == (
        f"fetching MiniMaxAI/MiniMax-M2 config.json from {url}"
    )
    fetched = [entry for entry in list(hub.requests())[before:] if entry.method == "GET"]
    assert {entry.path.rsplit("/", 1)[-1] for entry in fetched} == {
        "config.json",
        "model.safetensors.index.json",
    }


def test_a_fetched_model_plans_offline_from_the_cache(deploy: Runner, hub: FakeHub) -> None:
    online = deploy("plan", "zai-org/GLM-4.6-FP8", "--gpus", "8xH200", "--json")
    assert online.returncode == 0, online.stderr
    before = len(list(hub.requests()))
    offline = deploy("plan", "zai-org/GLM-4.6-FP8", "--gpus", "8xH200", "--json", offline=True)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == online.stdout
    assert offline.stderr == ""
    assert len(list(hub.requests())) == before  # not one request


def test_offline_without_a_cached_copy_says_how_to_get_one(deploy: Runner) -> None:
    result = deploy("plan", "zai-org/GLM-4.6-FP8", "--gpus", "8xH200", offline=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: zai-org/GLM-4.6-FP8 is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
        "unset HF_HUB_OFFLINE to fetch it once, or pass a local directory holding config.json\n"
    )


def test_catalog_models_plan_offline_with_no_cache(deploy: Runner) -> None:
    result = deploy("plan", "qwen3-8b", "--gpus", "1xH100", "--json", offline=True)
    assert result.returncode == 0, result.stderr
    assert _model(json.loads(result.stdout))["source"] == "catalog"


def test_gated_repo_without_a_token_names_the_license_page_and_hf_token(
    deploy: Runner, hub: FakeHub
) -> None:
    result = deploy("plan", "google/gemma-3-27b-it", "--gpus", "1xH100")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] + "\n" == (
        f"error: google/gemma-3-27b-it is gated: accept its license at "
        f"{hub.url}/google/gemma-3-27b-it; then export HF_TOKEN=<a token of that account> "
        "(or run `hf auth login`)\n"
    )
    denied = deploy("plan", "google/gemma-3-27b-it", "--gpus", "1xH100", token=NO_ACCESS_TOKEN)
    assert denied.returncode == 2
    assert denied.stderr.splitlines()[-1] == result.stderr.splitlines()[-1]


def test_the_token_hf_auth_login_saved_is_used(
    deploy: Runner, hub: FakeHub, tmp_path: Path
) -> None:
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text(VALID_TOKEN)
    result = deploy("plan", "meta-llama/Meta-Llama-3.1-8B-Instruct", "--gpus", "1xH100")
    assert result.returncode == 0, result.stderr


def test_missing_repo_names_the_nearest_catalog_models(deploy: Runner, hub: FakeHub) -> None:
    result = deploy("plan", "someone/Qwen3-32B", "--gpus", "1xH100")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] + "\n" == (
        f"error: model 'someone/Qwen3-32B' not found on the Hub ({hub.url}); did you mean "
        "qwen3-32b, qwen3-8b, qwen3-30b-a3b? run `deploy profiles list` to see the catalog; "
        "a private repo needs HF_TOKEN\n"
    )


def test_missing_revision_is_one_line(deploy: Runner) -> None:
    result = deploy("plan", "MiniMaxAI/MiniMax-M2", "--revision", "v9.9", "--gpus", "4xH200")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "error: revision 'v9.9' of MiniMaxAI/MiniMax-M2 not found on the Hub; "
        "pass a branch, tag or commit of that repo with --revision\n"
    )


def test_a_tag_resolves_to_its_commit(deploy: Runner, hub: FakeHub) -> None:
    repo = hub.repos["MiniMaxAI/MiniMax-M2"]
    repo.refs["v1.0"] = repo.commit
    plan = _plan_json(deploy, "MiniMaxAI/MiniMax-M2", "--revision", "v1.0", "--gpus", "4xH200")
    assert _model(plan)["revision"] == repo.commit


def test_unreachable_hub_is_one_line(deploy: Runner) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = deploy("plan", "MiniMaxAI/MiniMax-M2", "--gpus", "4xH200", endpoint=closed)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        f"error: cannot reach the Hugging Face Hub at {closed} for MiniMaxAI/MiniMax-M2 ("
    )
    assert last.endswith(
        "); check the network or HF_ENDPOINT, set HF_HUB_OFFLINE=1 to use the cache, or pass "
        "a local directory holding config.json"
    )


def test_malformed_config_names_the_file_and_field(deploy: Runner) -> None:
    result = deploy("plan", "fixtures/Broken-Config", "--gpus", "1xH100")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "error: fixtures/Broken-Config/config.json: field 'num_hidden_layers' must be a "
        "positive integer, got 'thirty-two'\n"
    )


def test_unknown_architecture_plans_as_a_generic_decoder_with_a_warning(
    deploy: Runner,
) -> None:
    plan = _plan_json(deploy, "fixtures/Ouroboros-7B", "--gpus", "1xH100")
    warnings = plan["warnings"]
    assert isinstance(warnings, list)
    assert warnings[:2] == [
        "OuroborosForCausalLM (model_type 'ouroboros') is not a family deploy knows: planned "
        "as a generic decoder from the standard config fields; check the memory",
        "no pinned vLLM or SGLang version registers OuroborosForCausalLM: vllm falls back to "
        "its Transformers backend (add --engine-arg --trust-remote-code if the repo ships its "
        "own modelling code)",
    ]
    # max_position_embeddings of 4M does not size the default context.
    request = plan["request"]
    assert isinstance(request, dict) and request["context"] == 32768


def test_single_file_checkpoint_reads_only_the_safetensors_header(
    deploy: Runner, hub: FakeHub
) -> None:
    before = len(list(hub.requests()))
    result = deploy("profiles", "show", "fixtures/Qwen3-0.6B-single-file", "--json")
    assert result.returncode == 0, result.stderr
    profile = json.loads(result.stdout)
    weights = [
        entry
        for entry in list(hub.requests())[before:]
        if entry.path.endswith("model.safetensors") and entry.method == "GET"
    ]
    assert weights and all(entry.range is not None for entry in weights)
    assert sum(entry.sent for entry in weights) < 1 << 20
    # BF16: two bytes per parameter the header declares.
    assert profile["checkpoint"]["bytes"] == 2 * profile["params_total"]


def test_architecture_the_engine_version_cannot_load_names_the_versions_that_can(
    deploy: Runner,
) -> None:
    result = deploy("plan", "fixtures/Baichuan-style-7B", "--gpus", "1xH100")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "error: vllm 0.33.0 cannot load BaichuanForCausalLM (fixtures/Baichuan-style-7B); "
        "versions that load it: sglang 0.5.19, sglang 0.5.21, sglang 0.5.22, sglang 0.5.23; "
        "choose one with "
        "--engine/--engine-version\n"
    )
    assert (
        deploy(
            "plan", "fixtures/Baichuan-style-7B", "--gpus", "1xH100", "--engine", "sglang"
        ).returncode
        == 0
    )
    older = deploy(
        "plan", "fixtures/Step5-style-7B", "--gpus", "1xH100", "--engine-version", "0.32.0"
    )
    assert older.stderr.endswith(
        "error: vllm 0.32.0 cannot load Step5ForCausalLM (fixtures/Step5-style-7B); versions "
        "that load it: vllm 0.33.0; choose one with --engine/--engine-version\n"
    )


def test_nvfp4_on_hopper_names_the_gpus_that_run_it(deploy: Runner) -> None:
    result = deploy("plan", "nvidia/DeepSeek-R1-FP4", "--gpus", "8xH200")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "error: H200-141GB-SXM cannot run NVFP4 weights: FP4 kernels need Blackwell "
        "(compute capability 10.x or 12.0); use one of: B200-180GB-SXM, B300-288GB-SXM, "
        "GB200-186GB-NVL72, GB300-288GB-NVL72, RTX5090-32GB, RTX-PRO-6000-96GB-Server, "
        "RTX-PRO-6000-96GB; or a BF16/FP8 checkpoint of the model\n"
    )


def test_sglang_only_format_is_refused_for_vllm(deploy: Runner) -> None:
    result = deploy("plan", "fixtures/Qwen3-8B-blockwise-int8", "--gpus", "1xH100")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "error: vllm 0.33.0 cannot load blockwise_int8 checkpoints "
        "(fixtures/Qwen3-8B-blockwise-int8); versions that load it: sglang 0.5.19, sglang 0.5.21, "
        "sglang 0.5.22, sglang 0.5.23; choose one with --engine/--engine-version, or another "
        "format of the model\n"
    )
    assert (
        deploy(
            "plan", "fixtures/Qwen3-8B-blockwise-int8", "--gpus", "1xH100", "--engine", "sglang"
        ).returncode
        == 0
    )


def test_render_pins_the_revision_in_the_engine_command(deploy: Runner, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    for engine in ("vllm", "sglang"):
        target = out / engine
        result = deploy(
            "render", "MiniMaxAI/MiniMax-M2", "--gpus", "4xH200", "--engine", engine,
            "--out", str(target),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        plan = json.loads((target / "plan.json").read_text())
        commit = plan["model"]["revision"]
        rendered = "\n".join(
            path.read_text() for path in target.rglob("*") if path.suffix in (".yaml", ".yml")
        )
        assert "--revision" in rendered and commit in rendered


def test_catalog_plan_never_imports_the_hub_library(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from orchestrator.cli import main\n"
        "sys.argv = ['deploy', 'plan', 'qwen3-8b', '--gpus', '1xH100']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('huggingface_hub' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert completed.stdout.splitlines()[-1] == "False", completed.stderr


def test_profiles_show_prints_a_hub_model(deploy: Runner, hub: FakeHub) -> None:
    result = deploy("profiles", "show", "Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert result.returncode == 0, result.stderr
    commit = hub.repos["Qwen/Qwen3-Next-80B-A3B-Instruct"].commit
    assert result.stdout == (
        "name              qwen3-next-80b-a3b-instruct\n"
        "hf id             Qwen/Qwen3-Next-80B-A3B-Instruct\n"
        "aliases           -\n"
        "architecture      Qwen3NextForCausalLM\n"
        "attention         GQA\n"
        "layers            48\n"
        "heads             16 query, 2 KV, head_dim 256\n"
        "hidden size       2048\n"
        "vocab             151936\n"
        "max context       262144\n"
        "parameters        79.7B total\n"
        "MoE               512 experts, top-10, 1 shared, 3.9B active\n"
        "linear attention  36 of 48 layers, 37.7 MiB state per request\n"
        "checkpoint        bf16\n"
        "source            hub at 326e00045b79a32563ec2d52550244b81964ccee\n"
        "weights           148.4 GiB (one GPU, checkpoint format)\n"
        "KV cache          24,576 B/token (BF16, layers that grow with context)\n"
        "max TP            -\n"
    ).replace("326e00045b79a32563ec2d52550244b81964ccee", commit)


def test_a_cached_model_still_plans_when_the_hub_is_unreachable(deploy: Runner) -> None:
    online = deploy("plan", "MiniMaxAI/MiniMax-M2", "--gpus", "4xH200", "--json")
    assert online.returncode == 0, online.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = deploy("plan", "MiniMaxAI/MiniMax-M2", "--gpus", "4xH200", "--json", endpoint=closed)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == json.loads(online.stdout)["model"]
    # The connection refused, the cache is what the client would serve: it is not loaded.
    assert not result.client_imported


@pytest.mark.parametrize("repo_id", ["a--b/c", "owner/bad..name"])
def test_an_invalid_repo_id_is_one_line(repo_id: str, deploy: Runner) -> None:
    for offline in (False, True):
        result = deploy("plan", repo_id, "--gpus", "1xH100", offline=offline)
        assert (result.returncode, result.stderr) == (
            2,
            f"error: {repo_id!r} is not a valid Hugging Face repo id; write it as owner/name\n",
        )
