"""Agent configs in files, as CORL users keep them: YAML (.yaml, .yml) or TOML (.toml), a flat
table of Config fields. Unknown or mistyped fields are errors that name them."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import yaml

from offrl.agent import config_from_dict
from offrl.errors import ConfigError
from offrl.run_files import atomic_write_text

SUFFIXES = (".yaml", ".yml", ".toml")


def _format(path: Path) -> str:
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"{path}: a config file ends in {', '.join(SUFFIXES)}")
    return "toml" if path.suffix == ".toml" else "yaml"


def read_config_values(path: Path) -> dict[str, Any]:
    """The field values a config file sets."""
    path = Path(path)
    kind = _format(path)
    try:
        text = path.read_text()
        values = tomllib.loads(text) if kind == "toml" else yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path} is not valid {kind.upper()}: {err}") from None
    if values is None:
        return {}
    if not isinstance(values, dict) or any(isinstance(v, dict) for v in values.values()):
        raise ConfigError(f"{path}: a config file is one flat table of Config fields")
    return values


def apply_config_file(config: Any, path: Path) -> Any:
    """`config` with the values `path` sets; the Config checks them as its constructor does."""
    values = read_config_values(path)
    merged = json.loads(json.dumps(dataclasses.asdict(config))) | values
    try:
        return config_from_dict(type(config), merged)
    except ValueError as err:  # unknown fields
        raise ConfigError(f"{path}: {err}") from None
    except TypeError as err:
        raise ConfigError(f"{path}: a value has the wrong type ({err})") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # numbers and strings are written alike in TOML and JSON


def write_config(path: Path, config: Any) -> Path:
    """Write every field of `config` to `path` (YAML or TOML by its suffix)."""
    path = Path(path)
    values = json.loads(json.dumps(dataclasses.asdict(config)))
    if _format(path) == "toml":
        text = "".join(f"{name} = {_toml_value(value)}\n" for name, value in values.items())
    else:
        text = yaml.safe_dump(values, sort_keys=False)
    atomic_write_text(path, text)
    return path
