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
    assert problem.startswith("fil/config.pbtxt:6:") and "max_batch_size" in problem, problem
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
    ev = {"src": str(REPO / "model_repository"), "bucket": "role-models", "endpoint": fake_gcs.url}
    first = ansible(ROLE_PLAY, extra_vars=ev)
    assert first.rc == 0, first.stdout[-3000:]
    assert fake_gcs.names("role-models", "triton/") == [
        "triton/model_repository/fil/1/xgboost.json",
        "triton/model_repository/fil/config.pbtxt",
        "triton/model_repository/fil/configs/cpu.pbtxt",
    ]
    fake_gcs.mark()
    second = ansible(ROLE_PLAY, extra_vars=ev)
    assert second.rc == 0 and second.changed == 0
    assert fake_gcs.uploads() == [] and fake_gcs.writes() == []
