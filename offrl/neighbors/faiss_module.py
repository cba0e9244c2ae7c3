"""FAISS, imported when a FAISS index or candidate list is first built: importing offrl, the agents
or PRDC's in-program `jax` search needs no FAISS, and the agents without a search never load it."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from offrl.errors import ConfigError


def faiss_module() -> ModuleType:
    """The `faiss` module; a ConfigError that says how to install it when it is missing."""
    try:
        import faiss
    except ImportError as error:
        raise ConfigError(
            f"PRDC's neighbour search needs FAISS on the host ({error}): pip install faiss-cpu"
        ) from None
    return faiss


def faiss_installed() -> bool:
    """Whether FAISS can be imported (without importing it)."""
    return importlib.util.find_spec("faiss") is not None
