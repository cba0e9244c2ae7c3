"""offrl's agents: each is a module with `Config`, `init`, `update` and `act` (DESIGN.md)."""

from types import ModuleType

from agents import ggdtd as GGDTD
from agents import td3bc as TD3BC

AGENTS: dict[str, ModuleType] = {"td3bc": TD3BC, "ggdtd": GGDTD}

__all__ = ["AGENTS", "GGDTD", "TD3BC"]
