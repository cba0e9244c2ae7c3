"""offrl's agents: each is a module with `Config`, `init`, `update` and `act` (DESIGN.md)."""

from types import ModuleType

from agents import td3bc as TD3BC

AGENTS: dict[str, ModuleType] = {"td3bc": TD3BC}

__all__ = ["AGENTS", "TD3BC"]
