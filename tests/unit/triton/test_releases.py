"""The release matrix and the release-aware rules: which names each release reads, and the migration."""

from __future__ import annotations

import re
import shutil

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import model_config, releases
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    migrate_repository,
    migrate_text,
    parse_config_text,
    validate_repository,
)
from testlib import REPO

SHIPPED = REPO / "model_repository"

# The sample configuration as it was written for 24.10 (output_class, storage_type).
CONFIG_24_10 = """# A 24.10-era configuration; this comment must survive the migration.
name: "fil"
backend: "fil"
max_batch_size: 32768
input [ { name: "input__0" data_type: TYPE_FP32 dims: [ 32 ] } ]
output [ { name: "output__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
instance_group [ { count: 1 kind: KIND_GPU } ]
parameters [
  {
    key: "model_type"
    value: { string_value: "xgboost_json" }
  },
  {
    key: "output_class"  # classifier
    value: { string_value: "true" }
  },
  {
    key: "predict_proba"
    value: { string_value: "true" }
  },
  {
    key: "algo"
    value: { string_value: "NAIVE" }
  },
  {
    key: "threshold"
    value: { string_value: "0.5" }
  },
  {
    key: "storage_type"
    value: { string_value: "AUTO" }
  }
]
dynamic_batching { max_queue_delay_microseconds: 100 }
"""


def release(tag):
    facts, advisories = releases.resolve(release=tag)
    assert advisories == []
    return facts


@pytest.fixture
def repo_24_10(tmp_path):
    dest = tmp_path / "model_repository"
    shutil.copytree(SHIPPED, dest)
    (dest / "fil" / "config.pbtxt").write_text(CONFIG_24_10)
    shutil.rmtree(dest / "fil" / "configs")
    return dest


def test_every_release_names_its_commits_and_a_parameter_set():
    rows = releases.matrix_rows()
    assert rows[0]["tag"] == releases.NEWEST == releases.DEFAULT_RELEASE == "26.06"
    assert [r["tag"] for r in rows][-1] == "24.10"
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{40}", row["server_commit"]) and re.fullmatch(r"[0-9a-f]{40}", row["fil_commit"])
        assert row["parameter_set"] in releases.PARAMETER_SETS and re.fullmatch(r"4\.\d+\.\d+", row["treelite"])
    assert release("24.10")["triton_version"] == "2.51.0" and release("24.10")["parameter_set"] == "24.10"
    assert release("25.08")["parameter_set"] == "24.10" and release("25.09")["parameter_set"] == "25.09"
    assert release("25.09")["fil_commit"].startswith("e15438b")
    assert release("26.06")["gpu_engine"] == "nvForest" and release("26.05")["gpu_engine"] == "cuML FIL"


@pytest.mark.parametrize("image,tag", [
    ("nvcr.io/nvidia/tritonserver:26.06-py3", "26.06"),
    ("127.0.0.1:5000/nvidia/tritonserver:24.10-role", "24.10"),
    ("us-central1-docker.pkg.dev/p/triton/triton_fil:25.09-py3@sha256:" + "a" * 64, "25.09"),
    ("nvcr.io/nvidia/tritonserver:latest", None),
    ("nvcr.io/nvidia/tritonserver", None),
])
def test_release_from_image_tag(image, tag):
    assert releases.tag_of_image(image) == tag


def test_releases_outside_the_matrix():
    facts, advisories = releases.resolve(image="nvcr.io/nvidia/tritonserver:26.07-py3")
    assert facts["triton_version"] == "2.71.0" and facts["assumed_from"] == "26.06" and not facts["covered"]
    assert "no FIL backend facts for 26.07" in advisories[0]
    facts, advisories = releases.resolve(image="nvcr.io/nvidia/tritonserver:latest")
    assert facts["tag"] == releases.DEFAULT_RELEASE and "names no NGC release" in advisories[0]
    with pytest.raises(releases.ReleaseError, match="older than the release matrix"):
        releases.resolve(release="23.12")
    with pytest.raises(releases.ReleaseError, match="^release: 'newest' is not an NGC release tag"):
        releases.resolve(release="newest")


def test_a_24_10_config_is_refused_for_26_06_with_the_renames_named(repo_24_10):
    problems = validate_repository(str(repo_24_10), release=release("26.06"))["problems"]
    text = "\n".join(problems)
    assert "parameters.output_class: removed in FIL 25.09" in text and "rename it to is_classifier" in text
    assert "parameters.algo: removed in FIL 25.09" in text and "rename it to layout" in text
    assert "parameters.storage_type: removed in FIL 25.09" in text and "delete it" in text
    assert all("migrate: true" in p for p in problems), problems


def test_the_same_config_is_valid_for_24_10_except_the_model_file_it_cannot_parse(repo_24_10):
    problems = validate_repository(str(repo_24_10), release=release("24.10"))["problems"]
    # The shipped xgboost.json is XGBoost 3.2's: Treelite 4.3 (24.10) stops at its "cats" field.
    assert len(problems) == 1 and "written by XGBoost 3.2.0" in problems[0] and "Treelite 4.3.0" in problems[0]


def test_a_25_09_config_is_refused_for_24_10_because_output_class_is_required(tmp_path):
    dest = tmp_path / "repo"
    shutil.copytree(SHIPPED, dest)
    problems = validate_repository(str(dest), release=release("25.08"))["problems"]
    text = "\n".join(problems)
    assert "parameters.is_classifier: introduced in FIL 25.09; Triton 25.08's backend does not read it — use " \
           "output_class" in text
    assert "parameters.output_class: missing; Triton 25.08's backend requires it" in text


def test_migrate_renames_keeps_comments_and_gives_the_intended_message(repo_24_10):
    target = release("26.06")
    (change,) = migrate_repository(str(repo_24_10), target)
    assert change["file"] == "fil/config.pbtxt"
    assert change["notes"] == ["output_class -> is_classifier", "algo NAIVE -> layout breadth_first",
                               "storage_type removed (no longer a FIL parameter)"]
    after = change["after"]
    assert after.startswith("# A 24.10-era configuration; this comment must survive the migration.")
    assert 'key: "is_classifier"  # classifier' in after and "storage_type" not in after
    params = {k: v.string_value for k, v in parse_config_text(after).parameters.items()}
    assert params == {"model_type": "xgboost_json", "is_classifier": "true", "predict_proba": "true",
                      "layout": "breadth_first", "threshold": "0.5"}
    (repo_24_10 / "fil" / "config.pbtxt").write_text(after)
    assert validate_repository(str(repo_24_10), release=target)["problems"] == []
    assert migrate_repository(str(repo_24_10), target) == []  # nothing left to rewrite


def test_migrate_back_to_24_10_and_field_form_parameters():
    text = ('backend: "fil"\nmax_batch_size: 8\n'
            'parameters { key: "is_classifier" value { string_value: "false" } }\n'
            'parameters { key: "chunk_size" value { string_value: "8" } }\n'
            'parameters { key: "layout" value { string_value: "layered" } }\n')
    after, notes = migrate_text(text, release("24.10"))
    assert notes == ["is_classifier -> output_class", "layout removed (algo defaults to ALGO_AUTO)",
                     "chunk_size -> threads_per_tree (a tuning value: measure again)"]
    params = {k: v.string_value for k, v in parse_config_text(after).parameters.items()}
    assert params == {"output_class": "false", "threads_per_tree": "8"}
    assert "layout" not in after and after.count("\n") == 4


def test_treelite_checkpoint_versions(tmp_path):
    findings = releases.model_file_findings
    problems, advisories = findings(release("24.10"), "treelite_checkpoint", {"treelite_version": (4, 8, 1)})
    assert problems == [] and "newer than Triton 24.10's 4.3.0: it loads" in advisories[0]
    problems = findings(release("26.06"), "treelite_checkpoint", {"treelite_version": (5, 0, 0)})[0]
    assert "reads checkpoints of Treelite 4.x only" in problems[0]
    assert findings(release("26.06"), "treelite_checkpoint", {"treelite_version": (4, 7, 0)}) == ([], [])
    # Treelite 4's deserializer reads 3.9 checkpoints through its v3 path, and no other 3.x.
    assert findings(release("26.06"), "treelite_checkpoint", {"treelite_version": (3, 9, 1)}) == ([], [])
    problems = findings(release("26.06"), "treelite_checkpoint", {"treelite_version": (3, 8, 0)})[0]
    assert "is not a treelite 4 checkpoint (header says version 3.8.0" in problems[0]
    problems = findings(release("25.12"), "xgboost_ubj", {"xgboost_version": (3, 1, 0)})[0]
    assert "Treelite 4.4.1 cannot parse" in problems[0]
    assert findings(release("26.01"), "xgboost_ubj", {"xgboost_version": (3, 2, 0)}) == ([], [])
    assert findings(release("25.12"), "xgboost_json", {"xgboost_version": (3, 0, 5)}) == ([], [])
    advisories = findings(release("25.09"), "xgboost", {})[1]
    assert "no longer documents it" in advisories[0]


def test_use_experimental_optimizations_is_deprecated_from_25_09(tmp_path):
    dest = tmp_path / "repo"
    shutil.copytree(SHIPPED, dest)
    cfg = dest / "fil" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace(
        'key: "threshold"', 'key: "use_experimental_optimizations"\n    value: { string_value: "true" }\n  },\n'
        '  {\n    key: "threshold"'))
    report = validate_repository(str(dest))
    assert report["problems"] == [] and "deprecated since 25.09" in report["warnings"][0]
    report = validate_repository(str(dest), release=release("24.10"))
    assert not any("use_experimental_optimizations" in w for w in report["warnings"])


def test_default_release_is_what_the_image_role_deploys():
    defaults = (REPO / "roles" / "gcr_image" / "defaults" / "main.yml").read_text()
    assert f"gcr_image_source: nvcr.io/nvidia/tritonserver:{releases.DEFAULT_RELEASE}-py3" in defaults
    assert f"gcr_image_tag: {releases.DEFAULT_RELEASE}-py3" in defaults
    assert model_config.validate_repository(str(SHIPPED))["release"]["tag"] == releases.DEFAULT_RELEASE


def test_the_documented_matrix_lists_every_release_with_its_commits():
    doc = (REPO / "docs" / "fil_releases.md").read_text()
    for row in releases.matrix_rows():
        line = (f"| {row['tag']} | {row['triton_version']} | [{row['server_commit'][:7]}]"
                f"({releases.SERVER_REPO}/tree/{row['server_commit']}) | [{row['fil_commit'][:7]}]"
                f"({releases.FIL_REPO}/tree/{row['fil_commit']}) | {row['parameter_set']} | {row['treelite']} | "
                f"{row['gpu_engine']} |")
        assert line in doc, line
