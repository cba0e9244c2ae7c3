"""The shipped-policy manifest record: the writer gives back the committed file's bytes, and the
reader names the file and the field of anything it cannot read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from offrl.behavior import manifest
from offrl.errors import DatasetError
from offrl.json_records import UNRECORDED

REPO_POLICIES = Path(manifest.__file__).parent / "policies"


@pytest.fixture
def copied(tmp_path) -> Path:
    """A copy of the committed manifest alone, to break."""
    shutil.copyfile(REPO_POLICIES / manifest.MANIFEST_NAME, tmp_path / manifest.MANIFEST_NAME)
    return tmp_path


def edit(folder: Path, change) -> Path:
    """Apply `change` to the parsed manifest in `folder` and write it back."""
    path = folder / manifest.MANIFEST_NAME
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def test_rewriting_the_committed_manifest_gives_its_bytes(tmp_path):
    record = manifest.read_policy_manifest(REPO_POLICIES)
    assert set(record.envs) == {"halfcheetah", "hopper", "walker2d"}
    manifest.write_policy_manifest(record, tmp_path)
    written = (tmp_path / manifest.MANIFEST_NAME).read_bytes()
    assert written == (REPO_POLICIES / manifest.MANIFEST_NAME).read_bytes()


def test_the_record_is_typed():
    hopper = manifest.read_policy_manifest(REPO_POLICIES).envs["hopper"]
    assert hopper.env_id == "Hopper-v5" and hopper.hidden_dims == (256, 256)
    assert isinstance(hopper.replay[0], manifest.RandomPhase)
    assert all(isinstance(p, manifest.SnapshotPhase) for p in hopper.replay[1:])
    assert hopper.level_policy("expert") is hopper.expert


def test_an_entry_shipped_before_replay_command_existed_keeps_lacking_it():
    walker = manifest.read_policy_manifest(REPO_POLICIES).envs["walker2d"]
    assert walker.training.replay_command is UNRECORDED
    assert "replay_command" not in manifest.manifest_text(
        manifest.PolicyManifest(envs={"walker2d": walker})
    )


def test_writing_an_env_keeps_the_envs_in_name_order():
    record = manifest.read_policy_manifest(REPO_POLICIES)
    hopper = record.envs["hopper"]
    again = manifest.PolicyManifest(envs={"walker2d": record.envs["walker2d"]}).with_env(
        "hopper", hopper
    )
    assert list(again.envs) == ["hopper", "walker2d"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m["envs"]["hopper"]["medium"].pop("sha256"), "envs.hopper.medium.sha256"),
        (
            lambda m: m["envs"]["hopper"]["training"].update(
                trainedSteps=m["envs"]["hopper"]["training"].pop("trained_steps")
            ),
            "envs.hopper.training.trained_steps is missing (found "
            "envs.hopper.training.trainedSteps instead)",
        ),
        (lambda m: m["envs"]["walker2d"].update(obs_dim="17"), "envs.walker2d.obs_dim"),
        (lambda m: m["envs"]["hopper"]["replay"][0].pop("policy"), "envs.hopper.replay[0].policy"),
        (lambda m: m["envs"]["hopper"].update(extra=1), "envs.hopper.extra"),
    ],
    ids=["missing", "renamed", "mistyped", "missing-in-a-phase", "unknown"],
)
def test_a_field_it_cannot_read_is_named_with_the_file(copied, change, named):
    path = edit(copied, change)
    with pytest.raises(DatasetError) as error:
        manifest.read_policy_manifest(copied)
    assert str(path) in str(error.value) and named in str(error.value)


def test_another_format_is_refused(copied):
    edit(copied, lambda m: m.update(format=2))
    with pytest.raises(DatasetError, match="manifest format 2"):
        manifest.read_policy_manifest(copied)


def test_no_manifest_is_an_empty_one(tmp_path):
    assert manifest.read_policy_manifest(tmp_path) == manifest.PolicyManifest()
