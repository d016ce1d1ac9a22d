"""gcs_bucket and gcs_sync through ansible-playbook against a real fake-gcs-server."""

from __future__ import annotations

import os
import shutil

import pytest

SYNC_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: sync
      rapids.triton_fil.gcs_sync:
        src: "{{ src }}"
        bucket: "{{ bucket }}"
        prefix: "{{ prefix | default('models') }}"
        delete: "{{ delete | default(false) }}"
        auth_kind: "{{ auth_kind | default('anonymous') }}"
        access_token: "{{ token | default(omit) }}"
        api_endpoint: "{{ endpoint }}"
"""

BUCKET_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: bucket
      rapids.triton_fil.gcs_bucket:
        name: "{{ bucket }}"
        project: test-project
        state: "{{ state | default('present') }}"
        location: "{{ location | default('US-CENTRAL1') }}"
        force: "{{ force | default(false) }}"
        auth_kind: anonymous
        api_endpoint: "{{ endpoint }}"
"""


def make_tree(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "repo", {
        "fil/config.pbtxt": b'backend: "fil"\n',
        "fil/1/xgboost.json": b"{}" * 1000,
        "other/config.pbtxt": b'backend: "fil"\nmax_batch_size: 8\n',
        ".hidden": b"never uploaded",
    })


def test_bucket_create_idempotent_and_guarded_delete(ansible, fake_gcs, tmp_path):
    ev = {"bucket": "bucket-life", "endpoint": fake_gcs.url}
    check = ansible(BUCKET_PLAY, extra_vars=ev, check=True, diff=True)
    assert check.rc == 0, check.stdout
    assert check.result("bucket")["changed"] is True
    first = ansible(BUCKET_PLAY, extra_vars=ev)
    assert first.rc == 0, first.stdout
    assert first.result("bucket")["changed"] is True
    fake_gcs.mark()
    second = ansible(BUCKET_PLAY, extra_vars=ev)
    assert second.rc == 0 and second.changed == 0, second.stdout
    assert fake_gcs.reads(), "the access log must show the run's reads"
    assert fake_gcs.writes() == []

    # A location change cannot happen in place: refused with the fix, nothing written.
    fake_gcs.mark()
    moved = ansible(BUCKET_PLAY, extra_vars={**ev, "location": "EU"})
    assert moved.rc != 0
    msg = moved.result("bucket")["msg"]
    assert "location cannot change" in msg and "US-CENTRAL1" in msg
    assert fake_gcs.writes() == []

    # A bucket holding objects is kept unless force=true.
    one_file = make_tree(tmp_path / "one", {"a.txt": b"a"})
    assert ansible(SYNC_PLAY, extra_vars={**ev, "src": str(one_file), "prefix": "x"}).rc == 0
    kept = ansible(BUCKET_PLAY, extra_vars={**ev, "state": "absent"})
    assert kept.rc != 0
    assert "force=true" in kept.result("bucket")["msg"]
    assert fake_gcs.names("bucket-life"), "objects must survive a refused delete"
    gone = ansible(BUCKET_PLAY, extra_vars={**ev, "state": "absent", "force": True})
    assert gone.rc == 0 and gone.result("bucket")["deleted_objects"] == 1
    again = ansible(BUCKET_PLAY, extra_vars={**ev, "state": "absent"})
    assert again.rc == 0 and again.changed == 0


def test_sync_uploads_then_noop_then_only_changes(ansible, fake_gcs, tree):
    fake_gcs.create_bucket("sync-1")
    ev = {"bucket": "sync-1", "endpoint": fake_gcs.url, "src": str(tree)}

    fake_gcs.mark()
    plan = ansible(SYNC_PLAY, extra_vars=ev, check=True, diff=True)
    assert plan.rc == 0, plan.stdout
    res = plan.result("sync")
    assert res["changed"] is True and res["planned_uploads"] == 3 and res["uploaded"] == 0
    assert sorted(a["object"] for a in res["actions"]) == [
        "models/fil/1/xgboost.json", "models/fil/config.pbtxt", "models/other/config.pbtxt"]
    assert "models/fil/config.pbtxt" in res["diff"]["after"]
    assert fake_gcs.writes() == [], "check mode must not write"

    first = ansible(SYNC_PLAY, extra_vars=ev)
    res = first.result("sync")
    assert first.rc == 0 and res["changed"] is True and res["uploaded"] == 3
    assert (res["bucket"], res["prefix"], res["url"]) == ("sync-1", "models", "gs://sync-1/models")
    assert res["bytes_sent"] == sum(len((tree / p).read_bytes()) for p in
                                    ("fil/config.pbtxt", "fil/1/xgboost.json", "other/config.pbtxt"))
    assert fake_gcs.read("sync-1", "models/fil/1/xgboost.json") == (tree / "fil/1/xgboost.json").read_bytes()
    assert ".hidden" not in " ".join(fake_gcs.names("sync-1"))

    fake_gcs.mark()
    second = ansible(SYNC_PLAY, extra_vars=ev)
    res = second.result("sync")
    assert second.rc == 0 and second.changed == 0, second.stdout
    assert res["bytes_sent"] == 0 and res["unchanged"] == 3
    assert fake_gcs.reads(), "the access log must show the listing"
    assert fake_gcs.uploads() == [] and fake_gcs.writes() == [], "an unchanged re-sync sends nothing"

    (tree / "fil/config.pbtxt").write_bytes(b'backend: "fil"\nmax_batch_size: 4\n')
    (tree / "fil/extra.txt").write_bytes(b"new")
    fake_gcs.mark()
    third = ansible(SYNC_PLAY, extra_vars=ev)
    res = third.result("sync")
    assert third.rc == 0 and res["changed"] is True
    assert sorted((a["object"], a["reason"]) for a in res["actions"]) == [
        ("models/fil/config.pbtxt", "size"), ("models/fil/extra.txt", "new")]
    assert len(fake_gcs.uploads()) == 2


def test_sync_keeps_remote_only_objects_unless_delete(ansible, fake_gcs, tree):
    fake_gcs.create_bucket("sync-2")
    ev = {"bucket": "sync-2", "endpoint": fake_gcs.url, "src": str(tree)}
    assert ansible(SYNC_PLAY, extra_vars=ev).rc == 0
    shutil.rmtree(tree / "other")
    kept = ansible(SYNC_PLAY, extra_vars=ev)
    res = kept.result("sync")
    assert kept.rc == 0 and res["changed"] is False and res["extra"] == ["models/other/config.pbtxt"]
    assert "models/other/config.pbtxt" in fake_gcs.names("sync-2")
    pruned = ansible(SYNC_PLAY, extra_vars={**ev, "delete": True})
    res = pruned.result("sync")
    assert pruned.rc == 0 and res["deleted"] == 1
    assert "models/other/config.pbtxt" not in fake_gcs.names("sync-2")


def test_sync_large_file_uses_resumable_upload(ansible, fake_gcs, tmp_path):
    fake_gcs.create_bucket("sync-big")
    root = make_tree(tmp_path / "big", {"m/1/model.bin": os.urandom(9 * 1024 * 1024 + 123)})
    ev = {"bucket": "sync-big", "endpoint": fake_gcs.url, "src": str(root)}
    fake_gcs.mark()
    run = ansible(SYNC_PLAY, extra_vars=ev)
    assert run.rc == 0, run.stdout
    uploads = fake_gcs.uploads()
    assert any("uploadType=resumable" in path for _m, path, _s in uploads)
    assert fake_gcs.read("sync-big", "models/m/1/model.bin") == (root / "m/1/model.bin").read_bytes()
    assert ansible(SYNC_PLAY, extra_vars=ev).changed == 0


def test_sync_errors_name_the_parameter_and_fix(ansible, fake_gcs, tree):
    missing = ansible(SYNC_PLAY, extra_vars={"bucket": "no-such-bucket", "endpoint": fake_gcs.url, "src": str(tree)})
    assert missing.rc != 0
    assert "bucket 'no-such-bucket' does not exist" in missing.result("sync")["msg"]
    bad_name = ansible(SYNC_PLAY, extra_vars={"bucket": "gs://x", "endpoint": fake_gcs.url, "src": str(tree)})
    assert "drop the 'gs://' prefix" in bad_name.result("sync")["msg"]
    no_dir = ansible(SYNC_PLAY, extra_vars={"bucket": "sync-1", "endpoint": fake_gcs.url, "src": "/nonexistent"})
    assert "src '/nonexistent' is not a directory" in no_dir.result("sync")["msg"]


def test_access_token_never_printed(ansible, fake_gcs, tree):
    fake_gcs.create_bucket("sync-secret")
    token = "ya29.SECRET-TOKEN-must-not-leak-42"
    run = ansible(SYNC_PLAY, extra_vars={"bucket": "sync-secret", "endpoint": fake_gcs.url, "src": str(tree),
                                         "auth_kind": "accesstoken", "token": token},
                  verbosity=3, callback="default")
    assert run.rc == 0, run.stdout[-3000:]
    assert token not in run.stdout and token not in run.stderr
