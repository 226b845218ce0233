"""Find the model a user names: local directory, then catalog alias or id, then the Hub.

The order keeps what works offline first: a directory holding `config.json`, then the shipped
catalog (no network, no hub library), then a Hugging Face repo id `owner/name` read through
`huggingface_hub` (its cache first, so a model fetched once keeps planning offline).
"""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.errors import CatalogError
from orchestrator.models.catalog import LIST_HINT, catalog_model, close_names
from orchestrator.schema import ModelProfile

# owner/name as the Hub spells repo ids (letters, digits, '-', '_', '.').
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or Path(text).expanduser().is_dir()


def find_model(text: str, revision: str | None = None) -> ModelProfile:
    """A model by local directory, catalog alias / HF id / name, or Hugging Face repo id.

    `revision` (branch, tag or commit) selects the Hub revision; a catalog model keeps its
    facts and records the revision so rendered commands pin it.
    """
    candidate = Path(text).expanduser()
    profile = catalog_model(text)
    # A directory wins, unless it is a stray folder named like a catalog model.
    if candidate.is_dir() and (profile is None or (candidate / "config.json").is_file()):
        from orchestrator.models.hf_config import model_from_directory

        return model_from_directory(candidate)
    if profile is not None:
        return profile if revision is None else profile.model_copy(update={"revision": revision})
    if _looks_like_path(text):
        raise CatalogError(
            f"model directory {text!r} does not exist",
            "pass a catalog name, a Hugging Face repo id or a directory holding config.json",
        )
    if _REPO_ID.match(text.strip()):
        from orchestrator.models.hub import hub_model

        return hub_model(text.strip(), revision)
    names = close_names(text)
    hint = f"did you mean {', '.join(names)}? " if names else ""
    raise CatalogError(
        f"unknown model {text!r}",
        f"{hint}{LIST_HINT}, pass a Hugging Face repo id (owner/name), "
        "or a local directory with config.json",
    )
