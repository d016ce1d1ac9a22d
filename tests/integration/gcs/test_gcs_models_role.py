"""The gcs_models role against fake-gcs-server: validation gates the upload."""

from __future__ import annotations

import shutil

from testlib import REPO

ROLE_PLAY = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: rapids.triton_fil.gcs_models
      vars:
        gcs_models_src: "{{ src }}"
        gcs_models_bucket: "{{ bucket }}"
        gcs_models_bucket_location: US-CENTRAL1
        gcp_project: test
        gcp_auth_kind: anonymous
        gcp_storage_endpoint: "{{ endpoint }}"
"""

MODULE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: validate
      rapids.triton_fil.triton_model_repository:
        path: "{{ src }}"
"""


def broken_copy(tmp_path):
    src = tmp_path / "model_repository"
    shutil.copytree(REPO / "model_repository", src)
    config = src / "fil" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 32768", "max_batch_size: \"many\""))
    return src


def test_module_names_file_line_and_field(ansible, tmp_path):
    run = ansible(MODULE_PLAY, extra_vars={"src": str(broken_copy(tmp_path))}, check=True)
    assert run.rc != 0
    result = run.result("validate")
    assert result["failed"] is True
    (problem,) = result["problems"]
    line = 1 + (REPO / "model_repository" / "fil" / "config.pbtxt").read_text().splitlines().index("max_batch_size: 32768")
    assert problem.startswith(f"fil/config.pbtxt:{line}:") and "max_batch_size" in problem, problem
    assert "nothing was uploaded" in result["msg"]


def test_module_on_the_shipped_repository_reports_the_model(ansible):
    run = ansible(MODULE_PLAY, extra_vars={"src": str(REPO / "model_repository")})
    assert run.rc == 0 and run.changed == 0
    (model,) = run.result("validate")["models"]
    assert model["name"] == "fil" and model["num_features"] == 32


def test_role_uploads_nothing_when_a_config_is_corrupt(ansible, fake_gcs, tmp_path):
    fake_gcs.mark()
    ev = {"src": str(broken_copy(tmp_path)), "bucket": "corrupt-models", "endpoint": fake_gcs.url}
    run = ansible(ROLE_PLAY, extra_vars=ev)
    assert run.rc != 0
    assert "max_batch_size" in run.result("Validate the model repository with Triton's ModelConfig")["msg"]
    assert fake_gcs.writes() == [], "a corrupt repository must not touch the bucket"


def test_role_syncs_then_reports_nothing_to_do(ansible, fake_gcs):
    """The configurations are model_rollout's (pinned to verified versions): gcs_models uploads the rest."""
    ev = {"src": str(REPO / "model_repository"), "bucket": "role-models", "endpoint": fake_gcs.url}
    first = ansible(ROLE_PLAY, extra_vars=ev)
    assert first.rc == 0, first.stdout[-3000:]
    assert fake_gcs.names("role-models", "triton/") == ["triton/model_repository/fil/1/xgboost.json"]
    facts = first.result("Hand the model repository location to the next roles")["ansible_facts"]
    # One fact for the hand-off, from what gcs_sync returned (no URI parsing downstream).
    assert facts["triton_fil_model_repository"] == {
        "bucket": "role-models", "prefix": "triton/model_repository",
        "uri": "gs://role-models/triton/model_repository"}
    assert facts["triton_fil_model_repository_uri"] == "gs://role-models/triton/model_repository"
    fake_gcs.mark()
    second = ansible(ROLE_PLAY, extra_vars=ev)
    assert second.rc == 0 and second.changed == 0
    assert fake_gcs.uploads() == [] and fake_gcs.writes() == []


def test_without_the_rollout_the_role_uploads_the_configurations_too(ansible, fake_gcs):
    ev = {"src": str(REPO / "model_repository"), "bucket": "role-models-all", "endpoint": fake_gcs.url,
          "triton_fil_model_rollout": False}
    run = ansible(ROLE_PLAY, extra_vars=ev)
    assert run.rc == 0, run.stdout[-3000:]
    assert fake_gcs.names("role-models-all", "triton/") == [
        "triton/model_repository/fil/1/xgboost.json",
        "triton/model_repository/fil/config.pbtxt",
        "triton/model_repository/fil/configs/cpu.pbtxt",
    ]


MIGRATE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: validate
      rapids.triton_fil.triton_model_repository:
        path: "{{ src }}"
        image: "{{ image }}"
        migrate: "{{ migrate }}"
"""

CONFIG_24_10_PARAMETERS = """parameters [
  {
    key: "model_type"
    value: { string_value: "xgboost_json" }
  },
  {
    key: "output_class"
    value: { string_value: "true" }
  },
  {
    key: "predict_proba"
    value: { string_value: "true" }
  },
  {
    key: "threshold"
    value: { string_value: "0.5" }
  },
  {
    key: "storage_type"
    value: { string_value: "AUTO" }
  }
]"""


def copy_24_10(tmp_path):
    """The shipped repository with the 24.10-era parameters it had before this collection moved to 26.06."""
    src = tmp_path / "model_repository"
    shutil.copytree(REPO / "model_repository", src)
    for config in (src / "fil" / "config.pbtxt", src / "fil" / "configs" / "cpu.pbtxt"):
        text = config.read_text()
        start, end = text.index("parameters ["), text.index("]\ndynamic_batching") + 1
        config.write_text(text[:start] + CONFIG_24_10_PARAMETERS + text[end:])
    return src


def test_a_24_10_config_for_a_26_06_image_is_refused_then_migrated(ansible, tmp_path):
    src = copy_24_10(tmp_path)
    original = (src / "fil" / "config.pbtxt").read_text()
    ev = {"src": str(src), "image": "nvcr.io/nvidia/tritonserver:26.06-py3", "migrate": False}

    refused = ansible(MIGRATE_PLAY, extra_vars=ev)
    assert refused.rc != 0
    result = refused.result("validate")
    assert result["release"]["tag"] == "26.06" and result["release"]["triton_version"] == "2.70.0"
    assert any("parameters.output_class: removed in FIL 25.09" in p and "rename it to is_classifier" in p
               for p in result["problems"]), result["problems"]
    assert "for Triton 26.06 (2.70.0)" in result["msg"]

    planned = ansible(MIGRATE_PLAY, extra_vars=dict(ev, migrate=True), check=True, diff=True)
    assert planned.rc == 0 and planned.changed == 1, planned.stdout[-3000:]
    result = planned.result("validate")
    assert [m["file"] for m in result["migrations"]] == ["fil/config.pbtxt", "fil/configs/cpu.pbtxt"]
    assert 'key: "is_classifier"' in result["diff"][0]["after"] and 'key: "output_class"' in result["diff"][0]["before"]
    assert (src / "fil" / "config.pbtxt").read_text() == original, "check mode must not write"

    migrated = ansible(MIGRATE_PLAY, extra_vars=dict(ev, migrate=True))
    assert migrated.rc == 0 and migrated.changed == 1
    text = (src / "fil" / "config.pbtxt").read_text()
    assert text.splitlines()[0] == original.splitlines()[0] and 'key: "is_classifier"' in text and "storage_type" not in text

    again = ansible(MIGRATE_PLAY, extra_vars=dict(ev, migrate=True))
    assert again.rc == 0 and again.changed == 0 and again.result("validate")["migrations"] == []


def test_the_same_config_is_accepted_for_a_24_10_image_except_the_xgboost_3_2_file(ansible, tmp_path):
    src = copy_24_10(tmp_path)
    run = ansible(MIGRATE_PLAY, extra_vars={"src": str(src), "image": "nvcr.io/nvidia/tritonserver:24.10-py3",
                                            "migrate": False})
    assert run.rc != 0
    (problem,) = run.result("validate")["problems"]
    assert "fil/1/xgboost.json: written by XGBoost 3.2.0" in problem and "Treelite 4.3.0" in problem
