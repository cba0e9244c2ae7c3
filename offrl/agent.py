"""The agent contract every agent module follows (docs/design.md, "The agent contract"), and
`resolve_agent`, the one way a name becomes an agent module (offrl's own or yours)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import pkgutil
import re
from types import ModuleType
from typing import Any, Protocol

import flax.struct
import jax

from offrl.envs.families import env_family
from offrl.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What an agent needs to know about the data to build its networks."""

    obs_dim: int
    action_dim: int
    max_action: float = 1.0


@flax.struct.dataclass
class Context:
    """What an update sees of the dataset beside its batch."""

    rows: jax.Array
    """The batch's row indices in the (normalised) training data."""
    prepared: Any = None
    """What the agent's `prepare` built once from the whole dataset (PRDC's neighbour search),
    shared by every seed; None for agents that build nothing."""


def no_preparation(data: Any, config: Any) -> None:
    """`prepare` of an agent that learns from its batches alone."""
    return None


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Fields every agent shares: how the training loop prepares and samples the data."""

    batch_size: int = 256
    """Minibatch size, sampled uniformly with replacement inside the compiled step."""
    normalize_states: bool = True
    """Normalise states with the dataset mean and std (+1e-3), evaluation observations too."""
    reward_scale: float = 1.0
    """Reward transform r' = reward_scale * r + reward_shift (antmaze conventions differ)."""
    reward_shift: float = 0.0

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        # Caught here, not as a divergence at step 2 that leaves a run folder behind.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float):
                require(math.isfinite(value), f"{field.name} must be finite, got {value}")
            if field.name.endswith("_lr"):
                require(0 < value <= 1, f"{field.name} must be in (0, 1], got {value}")


def require(condition: bool, message: str) -> None:
    """Config validation: a bad hyper-parameter is a ConfigError that names it."""
    if not condition:
        raise ConfigError(f"invalid hyper-parameter: {message}")


class Agent(Protocol):
    """A module with a frozen `Config` dataclass (a BaseConfig) and the functions `init`,
    `update` and `act`, all jittable; `prepare`, `OFFICIAL` and `BEHAVIOR_VERSION` are optional.

    `prepare(data, config)` builds, once per run, what the update needs of the whole
    (normalised) dataset (none without it: `no_preparation`); the loop passes it to every
    `update(state, batch, key, context)` inside the compiled scan as `context.prepared`, beside
    the batch's dataset rows `context.rows`. `init`, `update` and `act` are jittable.

    Optional: `stack_prepared(prepared_list)` stacks several datasets' `prepare` results on a
    leading axis (padded to the longest) for one program over the datasets (`offrl.grouped`), or
    returns None when they cannot share one; agents that prepare nothing need none.
    """

    Config: type
    OFFICIAL: dict[str, dict[str, Any]]
    """Official hyper-parameters per environment family (hopper, halfcheetah, antmaze, ...) where
    the official code sets them apart from the Config defaults; `official_config` applies them
    (none without it)."""
    BEHAVIOR_VERSION: int
    """Bumped whenever `update` changes what it computes; stored with every run, so results of
    different versions are never resumed into one another or shown side by side (1 without it)."""

    def init(self, key: jax.Array, spec: DatasetSpec, config: Any) -> Any: ...

    def prepare(self, data: Any, config: Any) -> Any: ...

    def update(
        self, state: Any, batch: Any, key: jax.Array, context: Context
    ) -> tuple[Any, dict]: ...

    def act(self, state: Any, observations: jax.Array) -> jax.Array: ...


def official_overrides(agent: Any, task: str | None) -> dict[str, Any]:
    """The agent's official values for the task's environment family (its `OFFICIAL` table),
    empty when the official code gives none."""
    return dict(getattr(agent, "OFFICIAL", {}).get(env_family(task), {}))


def official_config(agent: Any, task: str | None) -> Any:
    """The agent's Config as its official code runs the task: the class defaults with the
    environment family's official values."""
    return agent.Config(**official_overrides(agent, task))


def prepare_for(agent: Any, data: Any, config: Any) -> Any:
    """What the agent's `prepare` builds of the whole (normalised) dataset; None without one."""
    return getattr(agent, "prepare", no_preparation)(data, config)


def behavior_version(agent: Any) -> int:
    """The agent module's BEHAVIOR_VERSION; an agent that declares none is at its first, 1."""
    return int(getattr(agent, "BEHAVIOR_VERSION", 1))


# Fields added after runs were stored, with the default that computes what configs without them
# computed: a config's canonical form leaves them out at that default, so those runs keep their
# run.json, their store key and their resumability.
LATER_FIELDS: dict[str, Any] = {"critic_layer_norm": False}


def canonical_config(config: Any) -> dict[str, Any]:
    """A Config (or its run.json dict) as JSON values, without LATER_FIELDS at their default."""
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    values = json.loads(json.dumps(values))
    return {k: v for k, v in values.items() if k not in LATER_FIELDS or v != LATER_FIELDS[k]}


def config_from_dict(config_type: type, values: dict) -> Any:
    """Rebuild a Config stored as JSON (lists back to tuples, so it stays hashable)."""
    fields = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"{config_type.__module__}.Config has no field(s) {unknown}")
    return config_type(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


BUILTIN_PACKAGE = "agents"
"""The package of offrl's own agents; its `AGENTS` maps their short names to their modules."""
REQUIRED = {
    "init": ("key", "spec", "config"),
    "update": ("state", "batch", "key", "context"),
    "act": ("state", "observations"),
}
"""The functions every agent defines, with the arguments the training loop passes them."""
OPTIONAL = {"prepare": ("data", "config")}
IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
GUIDE = "docs/writing-an-agent.md"


def builtin_agents() -> dict[str, ModuleType]:
    """offrl's own agents by short name, imported on first use (`agents` sits above `offrl`)."""
    return dict(importlib.import_module(BUILTIN_PACKAGE).AGENTS)


def resolve_agent(name: str) -> ModuleType:
    """The agent module `name` names: a built-in agent's short name (td3bc, prdc, ...) or the
    import path of a module that follows the agent contract (mypkg.myagent); else a ConfigError
    that says what is wrong."""
    builtins = builtin_agents()
    if name in builtins:
        return builtins[name]
    unknown = (
        f"unknown agent {name!r}; choose one of: {', '.join(builtins)}, or give the import path "
        f"of your own agent module (mypkg.myagent; {GUIDE})"
    )
    if not IMPORT_PATH.fullmatch(name):
        raise ConfigError(unknown)
    try:
        module = importlib.import_module(name)
    except ImportError as err:
        if "." not in name and getattr(err, "name", None) == name:
            raise ConfigError(unknown) from None
        raise ConfigError(
            f"agent {name!r} cannot be imported ({err}): install its package or put it on "
            f"PYTHONPATH ({GUIDE})"
        ) from None
    return checked_agent(module)


def agents_in(package: ModuleType) -> dict[str, ModuleType]:
    """Every public module of `package` by file name, each checked against the agent contract:
    the built-in agents are the modules of `agents/`, so a new one is one new file there."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )
    return {
        name: checked_agent(importlib.import_module(f"{package.__name__}.{name}")) for name in names
    }


def checked_agent(agent: ModuleType) -> ModuleType:
    """`agent` itself if it follows the agent contract, else a ConfigError naming what it lacks."""
    name = agent.__name__
    missing = [part for part in ("Config", *REQUIRED) if not hasattr(agent, part)]
    if missing:
        raise ConfigError(
            f"agent module {name} has no {', '.join(missing)}: an agent module defines Config, "
            f"init, update and act ({GUIDE})"
        )
    config = agent.Config
    if not (isinstance(config, type) and issubclass(config, BaseConfig)):
        raise ConfigError(
            f"{name}.Config must be a frozen dataclass that subclasses offrl.agent.BaseConfig "
            f"(batch size, state normalisation, reward transform) ({GUIDE})"
        )
    contract = {**REQUIRED, **{f: p for f, p in OPTIONAL.items() if hasattr(agent, f)}}
    for function, parameters in contract.items():
        if not accepts_positional(getattr(agent, function), len(parameters)):
            raise ConfigError(
                f"{name}.{function} must be a function {function}({', '.join(parameters)}) "
                f"({GUIDE})"
            )
    return agent


def accepts_positional(function: Any, count: int) -> bool:
    """Whether `function` is callable with `count` positional arguments."""
    if not callable(function):
        return False
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # no signature to read (a builtin): trust it
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def agent_name(agent: ModuleType) -> str:
    """The name a run records for its agent, which `resolve_agent` takes back: a built-in
    agent's short name, else the module's import path."""
    package, _, short = agent.__name__.rpartition(".")
    return short if package == BUILTIN_PACKAGE else agent.__name__
