"""triton_model_repository's logic on real files: the shipped repository and broken copies of it."""

from __future__ import annotations

import re
import shutil
import struct

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
     "parameters.output_class: 'yes' must be the string \"true\" or \"false\""),
    ('"0.5"', '"high"', "parameters.threshold: 'high' is not a number"),
    ('"AUTO"', '"COMPRESSED"', "parameters.storage_type: 'COMPRESSED' is not one of AUTO, DENSE, SPARSE, SPARSE8"),
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
    edit(repo / "fil" / "config.pbtxt", 'key: "storage_type"', 'key: "storage_typ"')
    report = validate_repository(str(repo))
    assert report["problems"] == []
    assert len(report["warnings"]) == 1 and "parameters.storage_typ" in report["warnings"][0]


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


MODEL_FILE = ("fil", "1", "xgboost.json")


@pytest.mark.parametrize("content,expected", [
    (b"", "is empty (0 bytes)"),
    (b"\0" * 4096, "holds only NUL bytes"),
    (b'{"learner": {"no_params": 1}}', "is not an XGBoost JSON model (KeyError"),
    (b"<html>not a model</html>", "is not an XGBoost JSON model (JSONDecodeError"),
])
def test_model_files_must_be_non_empty_and_parse_for_their_model_type(repo, content, expected):
    repo.joinpath(*MODEL_FILE).write_bytes(content)
    problems = validate_repository(str(repo))["problems"]
    assert any(p.startswith("fil/1/xgboost.json: ") and expected in p for p in problems), problems


def _use(repo, model_type, filename, content):
    """Problems naming filename once model_type reads it (content) in both configurations."""
    for config in (repo / "fil" / "config.pbtxt", repo / "fil" / "configs" / "cpu.pbtxt"):
        config.write_text(re.sub(r'(key: "model_type"\s*value: \{ string_value: ")[^"]+', rf"\g<1>{model_type}",
                                 config.read_text()))
    repo.joinpath("fil", "1", filename).write_bytes(content)
    return [p for p in validate_repository(str(repo))["problems"] if filename in p]


def test_each_binary_format_is_checked_as_its_loader_reads_it(repo, tmp_path):
    xgb = pytest.importorskip("xgboost")
    treelite = pytest.importorskip("treelite")
    import numpy as np

    rows = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    booster = xgb.train({"max_depth": 2, "nthread": 1, "objective": "binary:logistic"},
                        xgb.DMatrix(rows, label=(rows[:, 0] > 0).astype(np.float32)), 2)
    booster.save_model(str(tmp_path / "m.ubj"))
    ubj = (tmp_path / "m.ubj").read_bytes()
    treelite.frontend.from_xgboost(booster).serialize(str(tmp_path / "m.tl"))
    checkpoint = (tmp_path / "m.tl").read_bytes()
    legacy = b"binf" + b"\0" * 136 + struct.pack("<Q", 15) + b"binary:logistic" + struct.pack("<Q", 6) + b"gbtree"

    assert _use(repo, "xgboost_ubj", "xgboost.ubj", ubj) == []
    assert "is XGBoost JSON, not UBJSON" in _use(repo, "xgboost_ubj", "xgboost.ubj", b'{"learner": {}}')[0]
    assert _use(repo, "treelite_checkpoint", "checkpoint.tl", checkpoint) == []
    assert "is not a treelite 4 checkpoint (header says version 2.4.0" in \
        _use(repo, "treelite_checkpoint", "checkpoint.tl", struct.pack("<iii", 2, 4, 0) + b"x" * 64)[0]
    assert _use(repo, "xgboost", "xgboost.model", legacy) == []
    assert "is XGBoost UBJSON, not the legacy binary format" in _use(repo, "xgboost", "xgboost.model", ubj)[0]
    assert "the FIL backend needs gbtree or dart" in \
        _use(repo, "xgboost", "xgboost.model", legacy.replace(b"gbtree", b"linear"))[0]
    assert "it has no max_feature_idx" in _use(repo, "lightgbm", "model.txt", b"tree\nversion=v4\nnum_class=1\nTree=0\n")[0]


def test_a_config_over_the_size_cap_is_refused_without_parsing_it(repo):
    import time

    keys = "".join(f'parameters {{ key: "k{i}" value: {{ string_value: "v" }} }}\n' for i in range(40000))
    (repo / "fil" / "config.pbtxt").write_text((repo / "fil" / "config.pbtxt").read_text() + keys)
    start = time.monotonic()
    problems = validate_repository(str(repo))["problems"]
    assert time.monotonic() - start < 2
    assert any(p.startswith("fil/config.pbtxt: ") and "over the 1024 KiB a model configuration may have" in p
               for p in problems), problems


def test_unknown_parameters_fold_into_one_warning_per_config(repo):
    keys = "".join(f'parameters {{ key: "typo_{i:03d}" value: {{ string_value: "v" }} }}\n' for i in range(495))
    for config in ("config.pbtxt", "configs/cpu.pbtxt"):
        path = repo / "fil" / config
        path.write_text(path.read_text() + keys)
    warnings = validate_repository(str(repo))["warnings"]
    assert len(warnings) == 2 and all("495 keys the FIL backend does not know" in w for w in warnings), warnings
    assert all(len(w) < 700 for w in warnings) and "and 485 more" in warnings[0]


def test_a_config_that_is_not_utf8_is_a_problem_not_a_crash(repo):
    (repo / "fil" / "config.pbtxt").write_bytes(b'name: "fil"\n# caf\xe9\n')
    problems = validate_repository(str(repo))["problems"]
    assert any(p.startswith("fil/config.pbtxt: is not UTF-8 text (byte 17") for p in problems), problems
