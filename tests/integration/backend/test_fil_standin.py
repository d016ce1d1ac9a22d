"""The CPU stand-in for the FIL backend, served by a real tritonserver, against the libraries' own predictions.

One tritonserver loads a local repository holding one model per FIL model file and output mode;
every answer is compared with what xgboost / lightgbm predict for the same rows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from local_stack.stack import REPO, free_port, http_ok, stop_process, tritonserver_binary, wait_for
from local_stack.backend_dir import assemble_backend_dir

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
treelite = pytest.importorskip("treelite")
httpclient = pytest.importorskip("tritonclient.http")

FEATURES = 6
ROWS = 16


def config(name, model_type, output_dims, output_class, predict_proba="false", extra="", classifier_key="output_class",
           more_parameters=""):
    return textwrap.dedent(f"""\
        name: "{name}"
        backend: "fil"
        max_batch_size: 64
        input [ {{ name: "input__0" data_type: TYPE_FP32 dims: [ {FEATURES} ] }} ]
        output [ {{ name: "output__0" data_type: TYPE_FP32 dims: [ {output_dims} ] }} ]
        instance_group [ {{ kind: KIND_CPU }} ]
        parameters [
          {{ key: "model_type" value: {{ string_value: "{model_type}" }} }},
          {{ key: "{classifier_key}" value: {{ string_value: "{output_class}" }} }},
          {{ key: "predict_proba" value: {{ string_value: "{predict_proba}" }} }},{more_parameters}
          {{ key: "threshold" value: {{ string_value: "0.3" }} }}
        ]
        {extra}""")


def write_model(root, name, filename, save, cfg):
    (root / name / "1").mkdir(parents=True)
    save(str(root / name / "1" / filename))
    (root / name / "config.pbtxt").write_text(cfg)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Train small models, write a repository, start tritonserver on it; yield (client, rows, expectations)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, FEATURES)).astype(np.float32)
    y_bin = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.float32)
    y_multi = np.digitize(x[:, 0] + 0.5 * x[:, 3], [-0.5, 0.5]).astype(np.float32)
    y_reg = (2 * x[:, 0] - x[:, 4] + 0.1 * rng.normal(size=400)).astype(np.float32)
    rows = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    params = {"max_depth": 3, "nthread": 1, "seed": 0}

    binary = xgb.train({**params, "objective": "binary:logistic"}, xgb.DMatrix(x, label=y_bin), 20)
    multi = xgb.train({**params, "objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(x, label=y_multi), 20)
    regression = xgb.train({**params, "objective": "reg:squarederror"}, xgb.DMatrix(x, label=y_reg), 20)
    light = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1},
                      lgb.Dataset(x, label=y_bin), num_boost_round=20)

    p_bin = binary.predict(xgb.DMatrix(rows))
    p_multi = multi.predict(xgb.DMatrix(rows))
    p_light = light.predict(rows)
    expectations = {
        "xgb_json_proba": np.stack([1 - p_bin, p_bin], axis=1),
        "xgb_json_class": (p_bin > 0.3).astype(np.float32).reshape(-1, 1),
        "xgb_ubj_multi_proba": p_multi,
        "xgb_ubj_multi_class": np.argmax(p_multi, axis=1).astype(np.float32).reshape(-1, 1),
        "xgb_model_regression": regression.predict(xgb.DMatrix(rows)).reshape(-1, 1),
        "lightgbm_proba": np.stack([1 - p_light, p_light], axis=1),
        "treelite_checkpoint_proba": np.stack([1 - p_bin, p_bin], axis=1),
        "xgb_json_proba_25_09": np.stack([1 - p_bin, p_bin], axis=1),
    }

    root = tmp_path_factory.mktemp("fil_repo")
    write_model(root, "xgb_json_proba", "xgboost.json", binary.save_model,
                config("xgb_json_proba", "xgboost_json", 2, "true", "true"))
    write_model(root, "xgb_json_class", "xgboost.json", binary.save_model,
                config("xgb_json_class", "xgboost_json", 1, "true"))
    write_model(root, "xgb_ubj_multi_proba", "xgboost.ubj", multi.save_model,
                config("xgb_ubj_multi_proba", "xgboost_ubj", 3, "true", "true"))
    write_model(root, "xgb_ubj_multi_class", "xgboost.ubj", multi.save_model,
                config("xgb_ubj_multi_class", "xgboost_ubj", 1, "true"))
    write_model(root, "xgb_model_regression", "forest.bin", lambda p: regression.save_model(p + ".ubj"),
                config("xgb_model_regression", "xgboost_ubj", 1, "false", extra='default_model_filename: "forest.bin.ubj"'))
    # model_type xgboost is the legacy binary (XGBoost <= 3.0 wrote it; the fixture records 3.0's predictions).
    write_model(root, "xgb_legacy_proba", "xgboost.model",
                lambda p: shutil.copy(REPO / "tests" / "fixtures" / "xgboost_legacy" / "xgboost.model", p),
                config("xgb_legacy_proba", "xgboost", 2, "true", "true"))
    write_model(root, "lightgbm_proba", "model.txt", light.save_model,
                config("lightgbm_proba", "lightgbm", 2, "true", "true"))
    write_model(root, "treelite_checkpoint_proba", "checkpoint.tl",
                lambda p: treelite.frontend.from_xgboost(binary).serialize(p),
                config("treelite_checkpoint_proba", "treelite_checkpoint", 2, "true", "true"))
    # The 25.09+ parameter set (is_classifier, layout, chunk_size) gives the same answers.
    write_model(root, "xgb_json_proba_25_09", "xgboost.json", binary.save_model,
                config("xgb_json_proba_25_09", "xgboost_json", 2, "true", "true", classifier_key="is_classifier",
                       more_parameters='{ key: "layout" value: { string_value: "depth_first" } },'
                                       '{ key: "chunk_size" value: { string_value: "4" } },'))
    # Neither output_class nor is_classifier: the real backend refuses ("Required parameter").
    write_model(root, "no_classifier_key", "xgboost.json", binary.save_model,
                config("no_classifier_key", "xgboost_json", 2, "true", "true", classifier_key="layout"))
    # A model whose declared features disagree with its file must fail to load, loudly.
    write_model(root, "wrong_features", "xgboost.json", binary.save_model,
                config("wrong_features", "xgboost_json", 2, "true", "true").replace(f"dims: [ {FEATURES} ]", "dims: [ 5 ]"))

    run_dir = tmp_path_factory.mktemp("triton")
    venv = REPO / ".venv"
    env = dict(__import__("os").environ)
    env.update(assemble_backend_dir(run_dir / "backends", venv))
    port = free_port()
    log_file = run_dir / "tritonserver.log"
    cmd = [str(tritonserver_binary(venv)), f"--model-repository={root}", f"--backend-directory={run_dir / 'backends'}",
           f"--http-port={port}", f"--grpc-port={free_port()}", f"--metrics-port={free_port()}",
           "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
           "--exit-on-error=false", "--strict-readiness=false", "--exit-timeout-secs=5"]
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)  # pylint: disable=consider-using-with
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/v2/models/treelite_checkpoint_proba/ready"), 120,
                 "tritonserver", proc, log_file)
        yield httpclient.InferenceServerClient(f"127.0.0.1:{port}"), rows, expectations, log_file
    finally:
        stop_process(proc)


def infer(client, model, rows):
    tensor = httpclient.InferInput("input__0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return client.infer(model, [tensor]).as_numpy("output__0")


@pytest.mark.parametrize("model", [
    "xgb_json_proba", "xgb_json_class", "xgb_ubj_multi_proba", "xgb_ubj_multi_class",
    "xgb_model_regression", "lightgbm_proba", "treelite_checkpoint_proba", "xgb_json_proba_25_09",
])
def test_stand_in_matches_the_library(served, model):
    client, rows, expectations, _log = served
    got = infer(client, model, rows)
    want = expectations[model]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_predictions_are_not_trivial(served):
    """Guard against a backend that returns constants: labels use both classes, probabilities vary."""
    client, rows = served[:2]
    labels = infer(client, "xgb_json_class", rows)
    assert set(labels.ravel().tolist()) == {0.0, 1.0}
    assert np.ptp(infer(client, "xgb_json_proba", rows)[:, 1]) > 0.1


def test_mismatched_feature_count_fails_to_load_with_reason(served):
    client, log_file = served[0], served[3]
    assert not client.is_model_ready("wrong_features")
    log = log_file.read_text(errors="replace")
    assert "input input__0 declares 5 features but xgboost.json was trained on 6" in log
    assert "LOCAL CPU STAND-IN" in log


def test_both_parameter_sets_load_and_the_log_says_which(served):
    client, log_file = served[0], served[3]
    log = log_file.read_text(errors="replace")
    assert re.search(r"model 'xgb_json_proba_25_09' .*parameter set 25\.09\+ \(is_classifier\)", log), log[-2000:]
    assert re.search(r"model 'xgb_json_proba' .*parameter set 24\.10-25\.08 \(output_class\)", log)
    assert not client.is_model_ready("no_classifier_key")
    assert "Required parameter is_classifier not found in config" in log


def test_legacy_binary_matches_what_xgboost_predicted_when_it_wrote_it(served):
    client = served[0]
    recorded = json.loads((REPO / "tests" / "fixtures" / "xgboost_legacy" / "predictions.json").read_text())
    got = infer(client, "xgb_legacy_proba", np.asarray(recorded["rows"], dtype=np.float32))
    p = np.asarray(recorded["probability"])
    np.testing.assert_allclose(got, np.stack([1 - p, p], axis=1), rtol=1e-5, atol=1e-6)
