"""triton_model_rollout's inputs and secrets, against fake-gcs-server and no Triton at all (no server serving)."""

from __future__ import annotations

import shutil
import socket

import pytest

from testlib import REPO

pytestmark = [pytest.mark.stack]

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: rollout
      rapids.triton_fil.triton_model_rollout:
        src: "{{ src }}"
        bucket: "{{ bucket }}"
        prefix: triton/model_repository
        config_name: cpu
        auth_kind: "{{ auth_kind | default('anonymous') }}"
        access_token: "{{ token | default(omit) }}"
        api_endpoint: "{{ endpoint }}"
        servers: [{name: nobody, url: "http://127.0.0.1:{{ port }}"}]
        timeout: 5
"""


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "model_repository"
    shutil.copytree(REPO / "model_repository", root, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    return root


def test_access_token_never_printed_and_a_first_publish_pins_version_1(ansible, fake_gcs, repo):
    fake_gcs.create_bucket("rollout-secret")
    token = "ya29.SECRET-TOKEN-must-not-leak-15"
    ev = {"src": str(repo), "bucket": "rollout-secret", "endpoint": fake_gcs.url, "port": closed_port(),
          "auth_kind": "accesstoken", "token": token}
    run = ansible(PLAY, extra_vars=ev, verbosity=3, callback="default")
    assert run.rc == 0, run.stdout[-3000:]
    assert token not in run.stdout and token not in run.stderr
    assert fake_gcs.names("rollout-secret", "triton/") == [
        "triton/model_repository/fil/1/xgboost.json",
        "triton/model_repository/fil/config.pbtxt",
        "triton/model_repository/fil/configs/cpu.pbtxt",
    ]


def test_a_changed_model_with_no_server_to_verify_on_is_refused_before_any_write(ansible, fake_gcs, repo):
    fake_gcs.create_bucket("rollout-unverified")
    ev = {"src": str(repo), "bucket": "rollout-unverified", "endpoint": fake_gcs.url, "port": closed_port()}
    assert ansible(PLAY, extra_vars=ev).rc == 0
    (repo / "fil" / "2").mkdir()
    shutil.copy(repo / "fil" / "1" / "xgboost.json", repo / "fil" / "2" / "xgboost.json")
    fake_gcs.mark()
    run = ansible(PLAY, extra_vars=ev)
    assert run.rc != 0
    msg = run.result("rollout")["msg"]
    assert "fil: the bucket serves [1] and [2] is wanted, but no Triton server is serving" in msg, msg
    assert "unverified_publish" in msg and msg.endswith("(nothing was written)"), msg
    assert fake_gcs.writes() == []


def test_a_model_without_a_reference_is_refused_naming_the_fix(ansible, fake_gcs, repo):
    (repo / "fil_reference.json").unlink()
    ev = {"src": str(repo), "bucket": "rollout-noref", "endpoint": fake_gcs.url, "port": closed_port()}
    run = ansible(PLAY, extra_vars=ev)
    assert run.rc != 0
    msg = run.result("rollout")["msg"]
    assert "references: fil has no reference file" in msg and "fil_model" in msg, msg
