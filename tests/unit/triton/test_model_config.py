"""triton_model_repository's logic on real files: the shipped repository and broken copies of it."""

from __future__ import annotations

import re
import shutil

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    ModelRepositoryError,
    parse_config_text,
    validate_repository,
)
from testlib import REPO

SHIPPED = REPO / "model_repository"


@pytest.fixture
def repo(tmp_path):
    """A writable copy of the shipped model repository."""
    dest = tmp_path / "model_repository"
    shutil.copytree(SHIPPED, dest)
    return dest


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_shipped_repository_is_valid_and_described():
    report = validate_repository(str(SHIPPED))
    assert report["problems"] == [] and report["warnings"] == []
    (model,) = report["models"]
    assert model["name"] == "fil" and model["backend"] == "fil"
    assert model["inputs"] == [{"name": "input__0", "data_type": "TYPE_FP32", "dims": [32]}]
    assert model["outputs"] == [{"name": "output__0", "data_type": "TYPE_FP32", "dims": [2]}]
    assert model["instance_kinds"] == ["KIND_GPU"] and model["versions"] == [1]
    assert (model["model_file"], model["num_features"], model["num_classes"]) == ("xgboost.json", 32, 2)
    assert model["config_variants"] == ["configs/cpu.pbtxt"]


def test_cpu_variant_differs_from_the_gpu_config_only_in_the_instance_kind():
    gpu = parse_config_text((SHIPPED / "fil" / "config.pbtxt").read_text())
    cpu = parse_config_text((SHIPPED / "fil" / "configs" / "cpu.pbtxt").read_text())
    assert [g.kind for g in gpu.instance_group] != [g.kind for g in cpu.instance_group]
    del gpu.instance_group[:]
    del cpu.instance_group[:]
    assert gpu == cpu


def test_misspelt_field_names_file_line_and_field(repo):
    edit(repo / "fil" / "config.pbtxt", "max_batch_size:", "max_batch_sise:")
    problems = validate_repository(str(repo))["problems"]
    assert len(problems) == 1
    assert re.match(r"fil/config\.pbtxt:\d+:\d+: .*max_batch_sise", problems[0]), problems


def test_bad_enum_value_is_named(repo):
    edit(repo / "fil" / "configs" / "cpu.pbtxt", "TYPE_FP32", "TYPE_FLOAT")
    (problem,) = validate_repository(str(repo))["problems"]
    assert problem.startswith("fil/configs/cpu.pbtxt:") and "TYPE_FLOAT" in problem


def test_missing_model_file_for_model_type(repo):
    edit(repo / "fil" / "config.pbtxt", '"xgboost_json"', '"lightgbm"')
    problems = validate_repository(str(repo))["problems"]
    assert "fil/1/model.txt: missing; model_type 'lightgbm' reads model.txt from every version folder" in problems


@pytest.mark.parametrize("old,new,expected", [
    ('"true" }\n  },\n  {\n    key: "predict_proba"', '"yes" }\n  },\n  {\n    key: "predict_proba"',
     "parameters.is_classifier: 'yes' must be the string \"true\" or \"false\""),
    ('"0.5"', '"high"', "parameters.threshold: 'high' is not a number"),
    ('"0.5" }', '"0.5" }\n  },\n  {\n    key: "layout"\n    value: { string_value: "NAIVE" }',
     "parameters.layout: 'NAIVE' is not one of depth_first, breadth_first, layered"),
    ('"0.5" }', '"0.5" }\n  },\n  {\n    key: "chunk_size"\n    value: { string_value: "3" }',
     "parameters.chunk_size: 3 must be a power of 2 between 1 and 32"),
    ('"xgboost_json"', '"catboost"', "parameters.model_type: 'catboost' is not one of"),
    ("dims: [ 32 ]", "dims: [ 31 ]", "input input__0.dims: [31] but xgboost.json has 32 features; set dims: [ 32 ]"),
    ("dims: [ 2 ]", "dims: [ 1 ]", "output output__0.dims: [1] but predict_proba gives one value per class"),
    ('name: "input__0"', 'name: "features"', "FIL models take exactly one input named input__0"),
    ("max_batch_size: 32768", "max_batch_size: 0", "max_batch_size: the FIL backend batches rows"),
    ('name: "fil"', 'name: "forest"', "name: 'forest' differs from the folder name 'fil'"),
])
def test_fil_rules_name_field_and_fix(repo, old, new, expected):
    edit(repo / "fil" / "config.pbtxt", old, new)
    problems = validate_repository(str(repo))["problems"]
    assert any(p.startswith("fil/config.pbtxt: ") and expected in p for p in problems), problems


def test_unknown_fil_parameter_is_a_warning_not_a_problem(repo):
    edit(repo / "fil" / "config.pbtxt", 'key: "threshold"\n    value: { string_value: "0.5" }',
         'key: "threshold"\n    value: { string_value: "0.5" }\n  },\n  {\n    key: "layuot"\n'
         '    value: { string_value: "depth_first" }')
    report = validate_repository(str(repo))
    assert report["problems"] == []
    assert len(report["warnings"]) == 1 and "parameters.layuot: not a FIL parameter in Triton 26.06" in report["warnings"][0]


def test_missing_version_folder_and_config(repo):
    shutil.rmtree(repo / "fil" / "1")
    (repo / "empty_model").mkdir()
    problems = validate_repository(str(repo))["problems"]
    assert "empty_model/config.pbtxt: missing" in problems[0]
    assert any(p.startswith("fil/: no version folder") for p in problems)


def test_lightgbm_feature_count_is_read_from_model_txt(repo):
    edit(repo / "fil" / "config.pbtxt", '"xgboost_json"', '"lightgbm"')
    (repo / "fil" / "1" / "model.txt").write_text("tree\nversion=v4\nnum_class=1\nmax_feature_idx=9\n\nTree=0\n")
    problems = validate_repository(str(repo))["problems"]
    assert any("has 10 features; set dims: [ 10 ]" in p for p in problems), problems


def test_unusable_repository_raises_naming_the_parameter(tmp_path):
    with pytest.raises(ModelRepositoryError, match=r"^path: .* is not a folder"):
        validate_repository(str(tmp_path / "nope"))
    with pytest.raises(ModelRepositoryError, match=r"^models: ghost not found"):
        validate_repository(str(SHIPPED), models=["ghost"])
