"""The rollout's pure logic: which versions a configuration serves, the pinned text, the load API's config."""

from __future__ import annotations

import json

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import pbtxt_edit
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import parse_config_text
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.rollout import (
    PIN_COMMENT, RolloutError, config_json, expected_tensors, pin_text, pinned_versions, policy_versions,
    read_local,
)
from testlib import REPO

SAMPLE = (REPO / "model_repository" / "fil" / "configs" / "cpu.pbtxt").read_text()


def versions(policy, available):
    return policy_versions(parse_config_text(SAMPLE + policy), available, "fil/config.pbtxt")


def test_triton_serves_the_highest_version_by_default():
    # model_config.proto: with no version_policy Triton uses latest { num_versions: 1 }.
    assert versions("", [1, 2, 3]) == [3]
    assert versions("version_policy: { latest: { num_versions: 2 } }", [1, 2, 5]) == [2, 5]
    assert versions("version_policy: { all: {} }", [1, 2]) == [1, 2]
    assert versions("version_policy: { specific: { versions: [ 1 ] } }", [1, 2]) == [1]


@pytest.mark.parametrize("policy, available, says", [
    ("version_policy: { specific: { versions: [ 4 ] } }", [1, 2], "version(s) [4], which have no folder"),
    ("", [], "no version folder"),
    ("version_policy: { latest: { num_versions: 0 } }", [1], "Triton then loads no version"),
])
def test_policies_triton_could_not_serve_are_refused(policy, available, says):
    with pytest.raises(RolloutError, match=r".*") as refused:
        versions(policy, available)
    assert says in str(refused.value) and "fil/config.pbtxt" in str(refused.value)


@pytest.mark.parametrize("policy", ["", "version_policy { latest { num_versions: 2 } }\n",
                                    "version_policy: { all: {} }\n",
                                    "version_policy < specific < versions: 1 > >\n"])
def test_pin_replaces_any_policy_and_keeps_the_rest_of_the_text(policy):
    text = policy + SAMPLE
    pinned = pin_text(text, [2, 3], "fil/configs/cpu.pbtxt")
    assert pinned_versions(pinned, "x") == [2, 3]
    assert pinned.count("version_policy") == 1 and pinned.endswith(
        "version_policy: { specific: { versions: [ 2, 3 ] } }\n")
    # Every other field and every comment stay as they were.
    assert "# CPU instances for the local stack" in pinned
    want = parse_config_text(SAMPLE)
    got = parse_config_text(pinned)
    got.ClearField("version_policy")
    assert got == want
    # Pinning the pinned text again gives the same bytes (the second run compares bytes).
    assert pin_text(pinned, [2, 3], "x") == pinned and pinned.count(PIN_COMMENT) == 1


def test_only_top_level_version_policy_is_cut():
    text = 'name: "m"\nparameters { key: "version_policy" value: { string_value: "x" } }\nversion_policy { all {} }\n'
    out = pbtxt_edit.remove_field(text, "version_policy")
    assert out == 'name: "m"\nparameters { key: "version_policy" value: { string_value: "x" } }\n'


def test_unpinned_or_unreadable_configurations_pin_nothing():
    assert pinned_versions(SAMPLE, "x") is None
    assert pinned_versions(SAMPLE + "version_policy: { latest: { num_versions: 1 } }", "x") is None
    assert pinned_versions("not a config {", "x") is None


def test_the_candidate_config_is_the_served_one_renamed_and_pinned():
    doc = json.loads(config_json(SAMPLE, "fil", name="fil__rollout_candidate", versions=[2]))
    assert doc["name"] == "fil__rollout_candidate"
    assert doc["version_policy"] == {"specific": {"versions": ["2"]}}  # proto3 JSON writes int64 as strings
    assert doc["backend"] == "fil" and doc["instance_group"][0]["kind"] == "KIND_CPU"
    assert expected_tensors(SAMPLE, "fil")["inputs"] == [{"name": "input__0", "data_type": "TYPE_FP32", "dims": [32]}]


def test_the_local_repository_is_read_with_its_reference(tmp_path):
    repo = tmp_path / "repo"
    (repo / "fil" / "1").mkdir(parents=True)
    (repo / "fil" / "2").mkdir()
    (repo / "fil" / "configs").mkdir()
    (repo / "fil" / "config.pbtxt").write_text(SAMPLE)
    (repo / "fil" / "configs" / "cpu.pbtxt").write_text(SAMPLE)
    (repo / "fil" / "2" / "xgboost.json").write_text("{}")
    with pytest.raises(RolloutError) as missing:
        read_local(str(repo), None, "cpu", None)
    assert "references: fil has no reference file" in str(missing.value)
    (repo / "fil_reference.json").write_text((REPO / "model_repository" / "fil_reference.json").read_text())
    model = read_local(str(repo), None, "cpu", None)[0]
    assert model.desired == [2] and model.server_config == "configs/cpu.pbtxt"
    assert list(model.candidate_files()) == ["file:2/xgboost.json"]
    assert set(model.pinned_configs()) == {"config.pbtxt", "configs/cpu.pbtxt"}
    with pytest.raises(RolloutError) as variant:
        read_local(str(repo), None, "gpu", None)
    assert "fil/configs/gpu.pbtxt does not exist" in str(variant.value)
    with pytest.raises(RolloutError) as unknown:
        read_local(str(repo), ["churn"], "", None)
    assert "models: churn not found" in str(unknown.value)
