"""Your own agent, end to end: the guide's example module (docs/examples/mypkg/l1bc.py) trains
through `fit` and through `offrl train --agent mypkg.l1bc`, and its run evaluates, exports and
loads like a built-in agent's; a module that breaks the contract is one clear error."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID

from agents import AGENTS
from offrl.agent import agents_in, resolve_agent
from offrl.cli import main
from offrl.data.registry import load_task
from offrl.errors import ConfigError
from offrl.policy import Policy, load_exported, load_policy
from offrl.train import fit

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
EXAMPLE = EXAMPLES / "mypkg" / "l1bc.py"
GUIDE = ROOT / "docs" / "writing-an-agent.md"
NAME = "mypkg.l1bc"
TASK = f"minari/{HOPPER_DATASET_ID}"


@pytest.fixture(scope="module")
def on_path():
    """The examples folder on sys.path, as `PYTHONPATH=docs/examples` puts it there."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLES))
        yield


@pytest.fixture(scope="module")
def observations(hopper_dataset) -> np.ndarray:
    return np.asarray(load_task(TASK).transitions.observations[:50])


def test_the_guide_shows_the_example_module_as_it_is():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    assert EXAMPLE.read_text() in blocks


def test_the_example_trains_through_fit(on_path, hopper_dataset, observations, tmp_path):
    agent = resolve_agent(NAME)
    transitions = load_task(TASK).transitions
    # A random policy's actions do not depend on the state: relabel them with a teacher that does.
    teacher = np.tanh(np.asarray(transitions.observations)[:, :3])
    transitions = dataclasses.replace(transitions, actions=teacher)
    result = fit(
        agent,
        transitions,
        agent.Config(hidden_dims=(32, 32), batch_size=32),
        seeds=(0, 1),
        steps=200,
        eval_every=100,
        out_dir=tmp_path / "run",
        progress=False,
    )
    assert json.loads((tmp_path / "run" / "run.json").read_text())["agent"] == NAME
    for seed_index in (0, 1):
        in_memory = Policy.from_fit(agent, result, seed_index=seed_index)
        error = np.abs(in_memory(transitions.observations) - teacher).mean()
        assert error < 0.2 * np.abs(teacher).mean(), (seed_index, error)
    restored = load_policy(tmp_path / "run", seed=1)
    np.testing.assert_array_equal(restored(observations), in_memory(observations))


def test_the_command_line_trains_evaluates_and_exports_it(
    on_path, hopper_dataset, observations, tmp_path, capsys
):
    run_dir, policy_file = tmp_path / "run", tmp_path / "l1bc.policy"
    train = ["train", "--agent", NAME, "--task", TASK, "--steps", "40", "--eval-every", "20"]
    train += ["--eval-episodes", "1", "--seeds", "2", "--actor-lr", "3e-4", "--out", str(run_dir)]
    assert main([*train, "--hidden-dims", "32", "32", "--batch-size", "32", "--no-progress"]) == 0
    manifest = json.loads((run_dir / "run.json").read_text())
    assert (manifest["agent"], manifest["config"]["actor_lr"]) == (NAME, 3e-4)

    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0
    assert f"{NAME} on {TASK}, checkpoint step 40" in capsys.readouterr().out

    assert main(["export", str(run_dir), "--seed", "1", "--out", str(policy_file)]) == 0
    act, metadata = load_exported(policy_file)
    assert (metadata["agent"], metadata["seed"], metadata["step"]) == (NAME, 1, 40)
    expected = load_policy(run_dir, seed=1)(observations)
    np.testing.assert_allclose(act(observations), expected, atol=1e-6)


def test_its_config_fields_are_flags_of_offrl_train(on_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # keep tyro from wrapping flag names
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--agent", NAME, "--help"])
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert "--actor-lr" in out and "--hidden-dims" in out and "import path" in out


WITHOUT_UPDATE = """
import dataclasses

from offrl.agent import BaseConfig

@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    pass

def init(key, spec, config):
    return None

def act(state, observations):
    return observations
"""
# The PRDC mistake of issue 22: extra arguments the training loop never passes.
EXTRA_ARGUMENTS = f"{WITHOUT_UPDATE}\ndef update(state, batch, key, constraint, hood):\n    pass\n"
NOT_A_BASE_CONFIG = WITHOUT_UPDATE.replace("(BaseConfig)", "") + (
    "\ndef update(state, batch, key, context):\n    pass\n"
)


@pytest.mark.parametrize(
    ("module", "source", "needle"),
    [
        ("agent_without_update", WITHOUT_UPDATE, "has no update"),
        (
            "agent_with_extra_arguments",
            EXTRA_ARGUMENTS,
            "update must be a function update(state, batch, key, context)",
        ),
        (
            "agent_with_a_plain_config",
            NOT_A_BASE_CONFIG,
            "Config must be a frozen dataclass that subclasses offrl.agent.BaseConfig",
        ),
    ],
)
def test_a_module_that_breaks_the_contract_is_one_clear_error(
    module, source, needle, hopper_dataset, tmp_path, monkeypatch, capsys
):
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=re.escape(needle)):
        resolve_agent(module)
    out = tmp_path / "run"
    assert main(["train", "--agent", module, "--task", TASK, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("offrl: error: ") and needle in captured.err
    assert "Traceback" not in captured.err and not out.exists()


def test_an_import_path_that_does_not_import_names_the_fix():
    with pytest.raises(ConfigError, match=r"'nopkg\.agent' cannot be imported .*PYTHONPATH"):
        resolve_agent("nopkg.agent")
    with pytest.raises(ConfigError, match="unknown agent 'td3 bc'; choose one of: a2pr, ggdtd"):
        resolve_agent("td3 bc")


def test_a_new_file_in_an_agents_package_is_a_new_agent(tmp_path, monkeypatch):
    package = tmp_path / "moreagents"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "l1bc.py").write_text(EXAMPLE.read_text())
    (package / "_shared.py").write_text("HELPER = 1\n")  # private: not an agent
    monkeypatch.syspath_prepend(str(tmp_path))
    import moreagents

    found = agents_in(moreagents)
    assert list(found) == ["l1bc"] and found["l1bc"].__name__ == "moreagents.l1bc"
    (package / "notes.py").write_text("TEXT = 'not an agent'\n")
    with pytest.raises(ConfigError, match=r"moreagents\.notes has no Config, init, update, act"):
        agents_in(moreagents)


def test_the_built_in_agents_are_the_files_of_the_agents_package():
    files = {path.stem for path in (ROOT / "agents").glob("[!_]*.py")}
    assert set(AGENTS) == files == {"td3bc", "prdc", "a2pr", "ggdtd"}
    assert all(resolve_agent(name) is AGENTS[name] for name in files)
