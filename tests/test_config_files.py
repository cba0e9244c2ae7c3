"""Official per-task configs by default (offrl train and fit), configs in YAML or TOML files, and
flags over files over official values."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml
from conftest import HOPPER_DATASET_ID

from agents import A2PR, PRDC, TD3BC
from offrl.agent import official_config
from offrl.cli import main
from offrl.data.registry import load_task
from offrl.train import fit

CHEETAH = "offrl/halfcheetah/medium-v0"


def saved(tmp_path, capsys, *flags: str, name: str = "c.toml") -> dict:
    out = tmp_path / name
    assert (
        main(["train", "--agent", "prdc", "--task", CHEETAH, *flags, "--save-config", str(out)])
        == 0
    )
    capsys.readouterr()
    text = out.read_text()
    return tomllib.loads(text) if name.endswith(".toml") else yaml.safe_load(text)


def test_official_values_per_environment_family():
    assert official_config(PRDC, CHEETAH).alpha == 40.0
    assert official_config(PRDC, "d4rl/antmaze-umaze-v2").reward_scale == 10000.0
    assert official_config(PRDC, "offrl/pointmaze/umaze-v0") == PRDC.Config()
    assert official_config(A2PR, "offrl/hopper/medium-replay-v0").discount == 0.995
    assert official_config(TD3BC, CHEETAH) == TD3BC.Config()
    assert official_config(PRDC, None) == PRDC.Config()


def test_offrl_train_starts_from_the_official_values_unless_told_otherwise(tmp_path, capsys):
    assert (saved(tmp_path, capsys)["alpha"], saved(tmp_path, capsys)["beta"]) == (40.0, 2.0)
    defaults = saved(tmp_path, capsys, "--class-defaults")
    assert (defaults["alpha"], defaults["beta"]) == (2.5, 1.0)


def test_a_config_file_applies_over_the_official_values_and_flags_over_it(tmp_path, capsys):
    (tmp_path / "mine.yaml").write_text("alpha: 10.0\nbeta: 3.0\nhidden_dims: [64, 64]\n")
    values = saved(tmp_path, capsys, "--config", str(tmp_path / "mine.yaml"), "--beta", "4")
    assert (values["alpha"], values["beta"], values["hidden_dims"]) == (10.0, 4.0, [64, 64])
    # What --save-config writes, --config reads back to the same config.
    (tmp_path / "again.toml").write_text((tmp_path / "c.toml").read_text())
    assert (
        saved(tmp_path, capsys, "--config", str(tmp_path / "again.toml"), name="d.toml") == values
    )
    assert saved(tmp_path, capsys, "--config", str(tmp_path / "c.toml"), name="e.yaml") == values


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("alpah = 10.0\n", ".toml", "has no field(s) ['alpah']"),
        ("alpha: [\n", ".yaml", "is not valid YAML"),
        ("[prdc]\nalpha = 1.0\n", ".toml", "one flat table of Config fields"),
        ("alpha = 1.0\n", ".ini", "a config file ends in .yaml, .yml, .toml"),
    ],
)
def test_a_bad_config_file_is_one_clear_error(tmp_path, capsys, text, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    argv = ["train", "--agent", "prdc", "--task", CHEETAH, "--config", str(path)]
    assert main([*argv, "--save-config", str(tmp_path / "out.toml")]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out.toml").exists()


def test_fit_defaults_to_the_official_config_and_records_it(hopper_dataset, tmp_path):
    loaded = load_task(f"minari/{HOPPER_DATASET_ID}")
    fit(
        A2PR,
        loaded.transitions,
        seeds=(0,),
        steps=2,
        eval_every=2,
        eval_episodes=1,
        task=loaded.task,
        out_dir=tmp_path / "run",
        progress=False,
    )
    config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert (config["mask"], config["discount"]) == (0.4, 0.995)  # A2PR's official hopper values
