"""offrl's agents: each is a module with `Config`, `init`, `update` and `act` (docs/design.md)."""

from types import ModuleType

from agents import a2pr as A2PR
from agents import ggdtd as GGDTD
from agents import prdc as PRDC
from agents import td3bc as TD3BC

AGENTS: dict[str, ModuleType] = {"td3bc": TD3BC, "prdc": PRDC, "a2pr": A2PR, "ggdtd": GGDTD}

__all__ = ["A2PR", "AGENTS", "GGDTD", "PRDC", "TD3BC"]
