"""triton_model_repository's logic on real files: the shipped repository and broken copies of it."""

from __future__ import annotations

import re
import shutil
import struct

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    ModelRepositoryError,
    migrate_repository,
    parse_config_text,
    validate_repository,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import model_files, releases
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


def _xgboost_ubj(tmp_path):
    """(booster, its UBJSON bytes): a small binary classifier trained by XGBoost itself."""
    xgb = pytest.importorskip("xgboost")
    import numpy as np

    rows = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    booster = xgb.train({"max_depth": 2, "nthread": 1, "objective": "binary:logistic"},
                        xgb.DMatrix(rows, label=(rows[:, 0] > 0).astype(np.float32)), 2)
    booster.save_model(str(tmp_path / "m.ubj"))
    return booster, (tmp_path / "m.ubj").read_bytes()


def test_each_binary_format_is_checked_as_its_loader_reads_it(repo, tmp_path):
    treelite = pytest.importorskip("treelite")
    booster, ubj = _xgboost_ubj(tmp_path)
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


def test_ubjson_is_decoded_whole_and_a_hostile_count_is_refused(repo, tmp_path):
    """A UBJSON file is read the way the validator reads its facts: truncated or hostile documents are problems."""
    _booster, ubj = _xgboost_ubj(tmp_path)
    assert "is not an XGBoost UBJSON model (UbjsonError: truncated" in \
        _use(repo, "xgboost_ubj", "xgboost.ubj", ubj[:len(ubj) // 2])[0]
    # An array of 2**62 typed nulls takes no bytes per element: it must not be looped through.
    hostile = b"{i\x07learner[$Z#L" + struct.pack(">q", 2 ** 62) + b"}"
    assert "container count" in _use(repo, "xgboost_ubj", "xgboost.ubj", hostile)[0]
    assert "is not an XGBoost UBJSON model" in _use(repo, "xgboost_ubj", "xgboost.ubj", b"[" * 100000)[0]


def test_a_treelite_3_9_checkpoint_is_accepted_and_its_v3_header_not_read_as_v4(repo):
    checkpoint = struct.pack("<iii", 3, 9, 0) + b"\x01" * 64
    assert _use(repo, "treelite_checkpoint", "checkpoint.tl", checkpoint) == []
    assert model_files.read_model_facts(str(repo / "fil" / "1" / "checkpoint.tl"), "treelite_checkpoint") == {
        "treelite_version": (3, 9, 0)}


def test_migrate_skips_configs_it_cannot_read_and_validation_names_them(repo):
    (repo / "fil" / "configs" / "cpu.pbtxt").write_bytes(b'backend: "fil"\n# caf\xe9\n')
    assert migrate_repository(str(repo), releases.RELEASES["26.06"]) == []
    problems = validate_repository(str(repo))["problems"]
    assert any(p.startswith("fil/configs/cpu.pbtxt: is not UTF-8 text") for p in problems), problems
