"""offrl's agents: every module of this package is one, known by its file name, with `Config`,
`init`, `update` and `act` (docs/writing-an-agent.md); the four papers' are also importable by
class-like names."""

import sys
from types import ModuleType

from agents import a2pr as A2PR
from agents import ggdtd as GGDTD
from agents import prdc as PRDC
from agents import td3bc as TD3BC
from offrl.agent import agents_in

AGENTS: dict[str, ModuleType] = agents_in(sys.modules[__name__])

__all__ = ["A2PR", "AGENTS", "GGDTD", "PRDC", "TD3BC"]
