"""Recipes: the settings the engines' maintainers publish for a model family, GPU generation,
layout and goal, kept as data (`profiles/recipes/*.yaml`) with the source each comes from.

A recipe adds flags (origin `recipe`) and environment to an engine's command line after deploy
has set the layout and memory flags and before the user's `--engine-arg` extras, so:
- a flag deploy already set (the layout, the memory fraction) is never replaced by a recipe;
- a user's `--engine-arg` of the same setting (any spelling, `--no-`/`--disable-` included)
  removes the recipe's flag, so the user always has the last word;
- the finished argv is checked against the version's flag schema like every other flag, and
  `min_version` keeps a recipe away from versions whose parser lacks its flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from string import Template
from typing import Literal

from pydantic import Field, ValidationError

from orchestrator.base import Strict
from orchestrator.engines.common import Argv, Placement
from orchestrator.errors import CatalogError
from orchestrator.versioning import at_least

RoleName = Literal["serve", "prefill", "decode"]
GpuArch = Literal["ampere", "ada", "hopper", "blackwell"]


class RecipeFlag(Strict):
    """One flag. `value` None (and no computed form) makes a boolean switch."""

    flag: str = Field(pattern=r"^--[a-z0-9][a-z0-9-]*$")
    value: str | None = None
    # The published value is per attention-DP rank (SGLang counts DP-attention totals over the
    # whole instance: LMSYS's 18432 running requests on 72 decode ranks are 256 per rank).
    per_attn_dp_rank: int | None = Field(default=None, ge=1)
    # The value is the number of DP ranks on this node (vLLM: one API server per local rank).
    local_dp_ranks: bool = False
    # Redundant expert slots: at least this many, rounded up so that routed + redundant experts
    # divide evenly over the EP ranks (both engines place the same number on every rank).
    # Substituted for `$redundant_experts` in `value`, or the value itself when `value` is None.
    redundant_experts_at_least: int | None = Field(default=None, ge=1)
    why: str


class NotAdopted(Strict):
    """A flag of the published command deploy does not render, and why."""

    flag: str
    why: str


class RecipeMatch(Strict):
    engine: Literal["vllm", "sglang"]
    # fnmatch patterns, lower case, against the catalog name and the Hugging Face id
    models: list[str] = []
    exclude_models: list[str] = []
    gpu_arch: list[GpuArch] = []
    goals: list[Literal["latency", "throughput", "balanced"]] = []
    roles: list[RoleName] = []
    min_version: str | None = None
    # Layout conditions; None means either.
    experts_across_nodes: bool | None = None
    attention_dp: bool | None = None
    disaggregated: bool | None = None
    # Only the containers that run an API server (rank 0, or every node of a hybrid-LB pool).
    api_ranks_only: bool = False


class Recipe(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    source: str = Field(pattern=r"^https://")
    # The published command (or config) the flags come from, quoted.
    command: str
    match: RecipeMatch
    flags: list[RecipeFlag] = []
    env: dict[str, str] = {}
    not_adopted: list[NotAdopted] = []


class RecipeFile(Strict):
    recipes: list[Recipe]


# Compute capability major.minor -> the generation the recipes are written for.
_ARCH_BY_CAPABILITY = (("12", "blackwell"), ("10", "blackwell"), ("9", "hopper"), ("8.9", "ada"))


def gpu_arch(compute_capability: str | None) -> str:
    if not compute_capability:
        return "other"
    for prefix, arch in _ARCH_BY_CAPABILITY:
        if compute_capability == prefix or compute_capability.startswith(prefix + "."):
            return arch
    return "ampere" if compute_capability.startswith("8.") else "other"


def recipes_dir() -> Path:
    from orchestrator.resources import profiles_dir

    return profiles_dir() / "recipes"


@cache
def load_recipes(directory: Path | None = None) -> tuple[Recipe, ...]:
    """Every recipe under `directory` (the shipped ones by default), the files' parsed YAML read
    from the per-user cache of the catalog when it is fresh (`orchestrator.profile_cache`)."""
    from orchestrator.profile_cache import cached_documents
    from orchestrator.profiles import read_yaml

    found: list[Recipe] = []
    for path, data in cached_documents(directory or recipes_dir(), read_yaml):
        try:
            found.extend(RecipeFile.model_validate(data).recipes)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise CatalogError(
                f"{path}: field {where!r}: {first['msg']}", "fix that recipe entry"
            ) from error
    names = [recipe.name for recipe in found]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise CatalogError(f"two recipes are named {duplicate!r}", "rename one of them")
    return tuple(found)


@dataclass(frozen=True)
class Situation:
    """What a recipe is matched against: one container of one engine instance."""

    engine: str
    version: str
    model_keys: tuple[str, ...]
    gpu_arch: str
    goal: str
    role: str
    rank: int
    serves_api: bool
    experts_across_nodes: bool
    attention_dp: int
    disaggregated: bool
    local_dp_ranks: int
    ep: int
    routed_experts: int | None


def situation(place: Placement) -> Situation:
    from orchestrator.engines.common import is_disaggregated

    plan = place.plan
    par = place.role.parallelism
    per_rank = par.tp * par.pp
    return Situation(
        engine=plan.engine.name,
        version=plan.engine.version,
        model_keys=(plan.model.name.lower(), plan.model.id.lower()),
        gpu_arch=gpu_arch(plan.hardware.compute_capability),
        goal=plan.request.goal,
        role=place.role.name,
        rank=place.rank,
        serves_api=serves_api(place),
        experts_across_nodes=experts_across_nodes(place),
        attention_dp=par.attn_dp if par.attn_dp > 1 else (par.dp if par.ep > 1 else 1),
        disaggregated=is_disaggregated(plan),
        local_dp_ranks=max(1, len(place.gpus) // max(1, per_rank)),
        ep=par.ep if plan.engine.name == "sglang" else par.tp * par.dp,
        routed_experts=routed_experts(place),
    )


def routed_experts(place: Placement) -> int | None:
    """Routed experts per MoE layer, as the planner recorded them; None for a dense model."""
    model = place.plan.model
    if not model.is_moe:
        return None
    if model.routed_experts is None:
        from orchestrator.errors import PlanError

        raise PlanError(
            f"the plan of {place.plan.name} does not record {model.name}'s routed experts "
            "(written by an older deploy)",
            "plan it again: `deploy render` or `deploy up` with the same options",
        )
    return model.routed_experts


def redundant_experts(at_least: int, routed: int, ep: int) -> int:
    """The smallest count >= `at_least` with (routed + count) divisible by the EP size."""
    return at_least + (-(routed + at_least)) % ep


def serves_api(place: Placement) -> bool:
    if place.rank == 0:
        return True
    if place.plan.engine.name != "vllm":
        return False
    from orchestrator.engines.common import hybrid_lb

    return hybrid_lb(place)


def experts_across_nodes(place: Placement) -> bool:
    """The experts of one instance span nodes: the all-to-all crosses the fabric (DeepEP)."""
    par = place.role.parallelism
    return par.ep > 1 and place.nnodes > 1 and par.ep > len(place.gpus)


def _matches_model(match: RecipeMatch, keys: tuple[str, ...]) -> bool:
    if match.models and not any(fnmatch(key, pat) for key in keys for pat in match.models):
        return False
    return not any(fnmatch(key, pat) for key in keys for pat in match.exclude_models)


def applies(recipe: Recipe, here: Situation) -> bool:
    match = recipe.match
    checks = (
        match.engine == here.engine,
        match.min_version is None or at_least(here.version, match.min_version),
        _matches_model(match, here.model_keys),
        not match.gpu_arch or here.gpu_arch in match.gpu_arch,
        not match.goals or here.goal in match.goals,
        not match.roles or here.role in match.roles,
        match.experts_across_nodes is None
        or match.experts_across_nodes == here.experts_across_nodes,
        match.attention_dp is None or match.attention_dp == (here.attention_dp > 1),
        match.disaggregated is None or match.disaggregated == here.disaggregated,
        not match.api_ranks_only or here.serves_api,
    )
    return all(checks)


def matching(here: Situation) -> list[Recipe]:
    return [recipe for recipe in load_recipes() if applies(recipe, here)]


class Unavailable(Exception):
    """A computed value cannot be computed for this model (the flag is left out)."""


def flag_value(item: RecipeFlag, here: Situation) -> str | None:
    if item.redundant_experts_at_least is not None:
        if here.routed_experts is None:
            raise Unavailable
        count = str(
            redundant_experts(item.redundant_experts_at_least, here.routed_experts, here.ep)
        )
        return (
            count
            if item.value is None
            else Template(item.value).substitute(redundant_experts=count)
        )
    if item.per_attn_dp_rank is not None:
        return str(item.per_attn_dp_rank * max(1, here.attention_dp))
    if item.local_dp_ranks:
        return str(here.local_dp_ranks)
    return item.value


def _same_setting(engine: str, version: str, flag: str) -> frozenset[str]:
    """Every spelling of `flag` in this version (aliases, `--no-X`, `--disable-X`)."""
    from orchestrator.engines.flags import load_schema

    spec = load_schema(engine, version).lookup(flag)
    return frozenset(spec.all_flags) if spec is not None else frozenset({flag})


def apply_recipes(place: Placement, argv: Argv) -> dict[str, str]:
    """Add the matching recipes' flags to `argv`; return their environment."""
    from orchestrator.engines.common import flag_name, split_user_args

    # A rehearsal (`--simulate`) gets the same recipe flags: it runs the real command lines.
    plan = place.plan
    # `--eplb-config.num_redundant_experts 8` (vLLM's dotted form) sets `--eplb-config` too.
    user = {
        flag_name(group[0]).split(".", 1)[0] for group in split_user_args(plan.request.engine_args)
    }
    here = situation(place)
    env: dict[str, str] = {}
    for recipe in matching(here):
        for item in recipe.flags:
            spellings = _same_setting(plan.engine.name, plan.engine.version, item.flag)
            taken = {source.flag for source in argv.sources}
            if spellings & (taken | user):
                continue  # deploy's layout, an earlier recipe or the user decides
            try:
                value = flag_value(item, here)
            except Unavailable:
                continue  # e.g. the expert count of a model outside the catalog
            argv.flag(
                item.flag,
                value,
                origin="recipe",
                why=f"{item.why} ({recipe.title}: {recipe.source})",
            )
        for key, value in recipe.env.items():
            env.setdefault(key, value)
    return env
