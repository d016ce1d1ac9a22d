"""fil_model's logic on models trained here: format detection, facts, determinism, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import fil_model, model_files

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
joblib = pytest.importorskip("joblib")
ensemble = pytest.importorskip("sklearn.ensemble")
linear = pytest.importorskip("sklearn.linear_model")

FEATURES = 5


def options(model_file, **extra):
    base = {"model_file": str(model_file), "model_format": "auto", "output_format": "auto", "name": "m", "version": 1,
            "release": None, "image": None, "predict_proba": True, "threshold": 0.5, "max_batch_size": 32768,
            "instance_count": 1, "dynamic_batching": True, "max_queue_delay_microseconds": 100, "cpu_variant": True,
            "reference_rows": 8, "reference_data": None, "atol": 1e-4, "rtol": 1e-4}
    base.update(extra)
    return base


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, FEATURES)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.float32), np.digitize(x[:, 1], [-0.4, 0.4]).astype(np.float32)


def test_ubjson_reader_reads_what_xgboost_writes(tmp_path, data):
    x, y, y3 = data
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(x, label=y3), 4)
    booster.save_model(str(tmp_path / "m.ubj"))
    booster.save_model(str(tmp_path / "m.json"))
    from_ubj = model_files.read_ubjson((tmp_path / "m.ubj").read_bytes())
    from_json = json.loads((tmp_path / "m.json").read_text())
    assert from_ubj["version"] == from_json["version"]
    assert from_ubj["learner"]["learner_model_param"] == from_json["learner"]["learner_model_param"]
    facts = model_files.read_model_facts(str(tmp_path / "m.ubj"), "xgboost_ubj")
    assert (facts["num_features"], facts["num_classes"], facts["task"]) == (FEATURES, 3, "multiclass")
    assert facts["xgboost_version"] == tuple(int(v) for v in xgb.__version__.split(".")[:3])
    del y


def test_formats_are_told_apart(tmp_path, data):
    x, y, _y3 = data
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=y), 2)
    booster.save_model(str(tmp_path / "m.json"))
    booster.save_model(str(tmp_path / "m.ubj"))
    lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, label=y), 2).save_model(
        str(tmp_path / "m.txt"))
    for name, fmt in (("m.json", "xgboost_json"), ("m.ubj", "xgboost_ubj"), ("m.txt", "lightgbm")):
        assert fil_model.detect_format(str(tmp_path / name), (tmp_path / name).read_bytes()) == fmt
    assert fil_model.detect_format("forest.joblib", b"\x80\x04") == "sklearn"
    with pytest.raises(fil_model.FilModelError, match="^model_format: cannot tell the format"):
        fil_model.detect_format("model.onnx", b"\x08\x07")


def test_the_same_model_gives_the_same_bytes(tmp_path, data):
    x, _y, y3 = data
    forest = ensemble.RandomForestClassifier(n_estimators=6, max_depth=3, random_state=0, n_jobs=2).fit(x, y3)
    joblib.dump(forest, tmp_path / "forest.joblib")
    first, second = fil_model.plan(options(tmp_path / "forest.joblib")), fil_model.plan(options(tmp_path / "forest.joblib"))
    assert first["files"] == second["files"] and first["reference"] == second["reference"]
    reference = json.loads(first["reference"])
    rows = np.asarray(reference["inputs"]["input__0"]["data"], dtype=np.float32)
    np.testing.assert_allclose(reference["outputs"]["output__0"]["data"], forest.predict_proba(rows), atol=1e-7)
    assert reference["classes"] == [0.0, 1.0, 2.0] and reference["predicted_by"].startswith("scikit-learn")
    assert set(first["files"]) == {"m/config.pbtxt", "m/configs/cpu.pbtxt", "m/1/checkpoint.tl"}


def test_labels_avoid_rows_at_the_threshold(tmp_path, data):
    x, y, _y3 = data
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=y), 5)
    booster.save_model(str(tmp_path / "m.json"))
    made = fil_model.plan(options(tmp_path / "m.json", predict_proba=False, reference_rows=32))
    reference = json.loads(made["reference"])
    rows = np.asarray(reference["inputs"]["input__0"]["data"], dtype=np.float32)
    p = booster.predict(xgb.DMatrix(rows))
    assert np.all(np.abs(p - 0.5) >= fil_model.THRESHOLD_MARGIN)
    assert reference["outputs"]["output__0"]["data"] == (p > 0.5).astype(float).reshape(-1, 1).tolist()


def test_refusals_name_the_parameter(tmp_path, data):
    x, y, y3 = data
    joblib.dump(linear.LogisticRegression().fit(x, y), tmp_path / "linear.pkl")
    with pytest.raises(fil_model.FilModelError, match="^model_file: .* holds a LogisticRegression"):
        fil_model.plan(options(tmp_path / "linear.pkl"))
    softmax = xgb.train({"objective": "multi:softmax", "num_class": 3, "nthread": 1}, xgb.DMatrix(x, label=y3), 2)
    softmax.save_model(str(tmp_path / "softmax.json"))
    with pytest.raises(fil_model.FilModelError, match="^predict_proba: a multi:softmax XGBoost model"):
        fil_model.plan(options(tmp_path / "softmax.json"))
    labels = fil_model.plan(options(tmp_path / "softmax.json", predict_proba=False))
    assert json.loads(labels["reference"])["outputs"]["output__0"]["shape"] == [8, 1]
    binary = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=y), 2)
    binary.save_model(str(tmp_path / "m.json"))
    with pytest.raises(fil_model.FilModelError, match="^output_format: native: Triton 24.10 cannot load this file"):
        fil_model.plan(options(tmp_path / "m.json", release="24.10", output_format="native"))
    with pytest.raises(fil_model.FilModelError, match="older than the release matrix"):
        fil_model.plan(options(tmp_path / "m.json", release="23.01"))
    (tmp_path / "rows.csv").write_text("1,2,3\n")
    with pytest.raises(fil_model.FilModelError, match="^reference_data: .* has 3 columns but the model takes 5"):
        fil_model.plan(options(tmp_path / "m.json", reference_data=str(tmp_path / "rows.csv")))
