"""fil_model end to end: models trained here -> fil_model -> triton_model_repository -> tritonserver -> triton_verify.

Each format (XGBoost JSON/UBJSON/legacy binary, LightGBM text, scikit-learn forests) goes through
the modules with ansible-playbook; a real tritonserver with the CPU fil stand-in serves the folders
(configs/cpu.pbtxt, as on the local stack) and triton_verify compares its answers with the
reference files, i.e. with the framework's own predictions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from local_stack.backend_dir import assemble_backend_dir
from local_stack.stack import REPO, free_port, http_ok, stop_process, tritonserver_binary, wait_for

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
joblib = pytest.importorskip("joblib")
ensemble = pytest.importorskip("sklearn.ensemble")

LEGACY = REPO / "tests" / "fixtures" / "xgboost_legacy"
FEATURES = 7

# name -> (file, fil_model options)
MODELS = {
    "xgb_json": ("binary.json", {}),
    "xgb_ubj_multi": ("multi.ubj", {}),
    "xgb_ubj_for_24_10": ("multi.ubj", {"release": "24.10"}),
    "xgb_legacy": ("legacy.model", {}),
    "lgb_binary_labels": ("binary.txt", {"predict_proba": False}),
    "lgb_regression": ("regression.txt", {}),
    "sk_forest": ("forest.joblib", {}),
    "sk_boosting_regressor": ("boosting.pkl", {"image": "nvcr.io/nvidia/tritonserver:25.08-py3"}),
}

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: fil_model
      rapids.triton_fil.fil_model:
        model_file: "{{ item.file }}"
        dest: "{{ dest }}"
        name: "{{ item.name }}"
        release: "{{ item.options.release | default(omit) }}"
        image: "{{ item.options.image | default(omit) }}"
        predict_proba: "{{ item.options.predict_proba | default(true) }}"
      loop: "{{ models }}"
      register: made
"""

VALIDATE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: validate
      rapids.triton_fil.triton_model_repository:
        path: "{{ dest }}"
        release: "{{ release }}"
        models: "{{ models }}"
"""

VERIFY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: verify
      rapids.triton_fil.triton_verify:
        url: "{{ url }}"
        model: "{{ item.name }}"
        reference_file: "{{ item.reference_file }}"
        expected_config: "{{ item.config }}"
        timeout: 60
      loop: "{{ made }}"
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Small models of every format, trained here (the legacy binary comes from XGBoost 3.0: see its fixture)."""
    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(11)
    x = rng.normal(size=(600, FEATURES)).astype(np.float32)
    y_bin = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.float32)
    y_multi = np.digitize(x[:, 0] + 0.5 * x[:, 3], [-0.5, 0.5]).astype(np.float32)
    y_reg = (2 * x[:, 0] - x[:, 4] + 0.1 * rng.normal(size=600)).astype(np.float32)
    params = {"max_depth": 3, "nthread": 1, "seed": 0}
    xgb.train({**params, "objective": "binary:logistic"}, xgb.DMatrix(x, label=y_bin), 15).save_model(
        str(root / "binary.json"))
    xgb.train({**params, "objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(x, label=y_multi), 10).save_model(
        str(root / "multi.ubj"))
    lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1, "seed": 0},
              lgb.Dataset(x, label=y_bin), num_boost_round=15).save_model(str(root / "binary.txt"))
    lgb.train({"objective": "regression", "num_leaves": 7, "verbose": -1, "num_threads": 1, "seed": 0},
              lgb.Dataset(x, label=y_reg), num_boost_round=15).save_model(str(root / "regression.txt"))
    joblib.dump(ensemble.RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(x, y_multi),
                root / "forest.joblib")
    joblib.dump(ensemble.GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0).fit(x, y_reg),
                root / "boosting.pkl")
    shutil.copy(LEGACY / "xgboost.model", root / "legacy.model")
    return root


def items(trained, names):
    return [{"name": n, "file": str(trained / MODELS[n][0]), "options": MODELS[n][1]} for n in names]


@pytest.fixture(scope="module")
def made(trained, tmp_path_factory):
    from testlib import run_playbook  # pylint: disable=import-outside-toplevel
    dest = tmp_path_factory.mktemp("model_repository")
    tmp = tmp_path_factory.mktemp("plays")
    ev = {"dest": str(dest), "models": items(trained, MODELS)}
    first = run_playbook(PLAY, extra_vars=ev, tmp_path=tmp)
    assert first.rc == 0, first.stdout[-4000:]
    return dest, first, ev, tmp


def test_every_format_gives_a_model_folder_for_its_release(made):
    dest, first, _ev, _tmp = made
    results = {r["item"]["name"]: r for r in first.result("fil_model")["results"]}
    assert all(r["changed"] for r in results.values())
    summary = {n: (r["model"]["model_type"], r["release"]["tag"], r["config"]["outputs"][0]["dims"])
               for n, r in results.items()}
    assert summary == {
        "xgb_json": ("xgboost_json", "26.06", [2]),
        "xgb_ubj_multi": ("xgboost_ubj", "26.06", [3]),
        # Treelite 4.3 (24.10) cannot parse XGBoost 3.2's UBJSON: fil_model writes a checkpoint instead.
        "xgb_ubj_for_24_10": ("treelite_checkpoint", "24.10", [3]),
        "xgb_legacy": ("xgboost", "26.06", [2]),
        "lgb_binary_labels": ("lightgbm", "26.06", [1]),
        "lgb_regression": ("lightgbm", "26.06", [1]),
        "sk_forest": ("treelite_checkpoint", "26.06", [3]),
        "sk_boosting_regressor": ("treelite_checkpoint", "25.08", [1]),
    }
    assert any("converted to a Treelite checkpoint" in a for a in results["xgb_ubj_for_24_10"]["advisories"])
    params_26 = results["xgb_json"]["config"]["parameters"]
    params_24 = results["xgb_ubj_for_24_10"]["config"]["parameters"]
    assert params_26 == {"model_type": "xgboost_json", "is_classifier": "true", "predict_proba": "true",
                         "threshold": "0.5"}
    assert params_24["output_class"] == "true" and "is_classifier" not in params_24
    assert results["lgb_regression"]["config"]["parameters"] == {"model_type": "lightgbm", "is_classifier": "false"}
    assert results["sk_boosting_regressor"]["config"]["parameters"]["output_class"] == "false"
    for name in MODELS:
        assert (dest / name / "configs" / "cpu.pbtxt").is_file() and (dest / f"{name}_reference.json").is_file()


def test_native_files_are_the_users_bytes(made, trained):
    dest = made[0]
    assert (dest / "xgb_json" / "1" / "xgboost.json").read_bytes() == (trained / "binary.json").read_bytes()
    assert (dest / "lgb_regression" / "1" / "model.txt").read_bytes() == (trained / "regression.txt").read_bytes()


def test_legacy_reference_matches_what_xgboost_itself_predicted(made):
    """The legacy binary cannot be read by XGBoost >= 3.1; Treelite's predictions must equal XGBoost 3.0's own."""
    dest = made[0]
    recorded = json.loads((LEGACY / "predictions.json").read_text())
    from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import fil_model  # pylint: disable=import-outside-toplevel
    model = fil_model._Model(str(dest / "xgb_legacy" / "1" / "xgboost.model"),  # pylint: disable=protected-access
                             (dest / "xgb_legacy" / "1" / "xgboost.model").read_bytes(), "xgboost")
    got = model.raw(np.asarray(recorded["rows"], dtype=np.float32))
    np.testing.assert_allclose(got, recorded["probability"], atol=1e-6)
    reference = json.loads((dest / "xgb_legacy_reference.json").read_text())
    assert "GTIL" in reference["predicted_by"] or reference["predicted_by"].startswith("xgboost")


def test_second_run_changes_nothing_and_check_mode_writes_nothing(made, trained, tmp_path):
    from testlib import run_playbook  # pylint: disable=import-outside-toplevel
    dest, _first, ev, tmp = made
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    second = run_playbook(PLAY, extra_vars=ev, tmp_path=tmp)
    assert second.rc == 0 and second.changed == 0, second.stdout[-3000:]
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()} == before
    fresh = tmp_path / "fresh"
    check = run_playbook(PLAY, extra_vars=dict(ev, dest=str(fresh), models=items(trained, ["xgb_json", "sk_forest"])),
                         tmp_path=tmp_path, check=True, diff=True)
    assert check.rc == 0 and [r["changed"] for r in check.result("fil_model")["results"]] == [True, True]
    assert not fresh.exists()
    result = check.result("fil_model")["results"][0]
    diffs = {d["after_header"]: d for d in result["diff"]}
    assert 'key: "is_classifier"' in diffs["xgb_json/config.pbtxt"]["after"]
    assert diffs["xgb_json/1/xgboost.json"]["after"].startswith("{")  # text model shown as text


def test_models_validate_serve_and_verify_against_the_framework(made, tmp_path_factory):
    from testlib import run_playbook  # pylint: disable=import-outside-toplevel
    dest, first, _ev, tmp = made
    for release, names in (("26.06", [n for n in MODELS if n not in ("xgb_ubj_for_24_10", "sk_boosting_regressor")]),
                           ("24.10", ["xgb_ubj_for_24_10"]), ("25.08", ["sk_boosting_regressor"])):
        run = run_playbook(VALIDATE, extra_vars={"dest": str(dest), "release": release, "models": names}, tmp_path=tmp)
        assert run.rc == 0, run.stdout[-3000:]

    run_dir = tmp_path_factory.mktemp("triton")
    env = dict(os.environ)
    env.update(assemble_backend_dir(run_dir / "backends", REPO / ".venv"))
    port = free_port()
    log_file = run_dir / "tritonserver.log"
    cmd = [str(tritonserver_binary(REPO / ".venv")), f"--model-repository={dest}", "--model-config-name=cpu",
           f"--backend-directory={run_dir / 'backends'}", f"--http-port={port}", f"--grpc-port={free_port()}",
           f"--metrics-port={free_port()}", "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
           "--metrics-address=127.0.0.1", "--exit-timeout-secs=5"]
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)  # pylint: disable=consider-using-with
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/v2/health/ready"), 120, "tritonserver", proc, log_file)
        made_results = [{"name": r["item"]["name"], "reference_file": r["reference_file"], "config": r["config"]}
                        for r in first.result("fil_model")["results"]]
        run = run_playbook(VERIFY, extra_vars={"url": f"127.0.0.1:{port}", "made": made_results}, tmp_path=tmp)
        assert run.rc == 0, run.stdout[-4000:] + log_file.read_text(errors="replace")[-3000:]
        verified = {r["item"]["name"]: r["inference"] for r in run.result("verify")["results"]}
        assert set(verified) == set(MODELS) and all(v["rows"] == 8 for v in verified.values())
    finally:
        stop_process(proc)
    log = log_file.read_text(errors="replace")
    assert "parameter set 25.09+ (is_classifier)" in log and "parameter set 24.10-25.08 (output_class)" in log
