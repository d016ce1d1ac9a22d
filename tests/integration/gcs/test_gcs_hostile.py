"""gcs_sync against hostile or broken model repositories, through ansible-playbook and a real fake-gcs-server.

Nothing outside src leaves the machine, an entry that cannot be read stops the run before the first
write (and never turns into a delete), names GCS refuses are refused here, and every refusal is a
task failure naming the entry and the fix, never a traceback.
"""

from __future__ import annotations

import os

import pytest

from testlib import assert_no_traceback, without_file_permission_override

SYNC_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: sync
      rapids.triton_fil.gcs_sync:
        src: "{{ src }}"
        bucket: "{{ bucket }}"
        prefix: models
        delete: "{{ delete | default(false) }}"
        exclude: "{{ exclude | default(['.*', '__pycache__', '*.pyc']) }}"
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
def repo(tmp_path):
    return make_tree(tmp_path / "repo", {"fil/config.pbtxt": b'backend: "fil"\n', "fil/1/xgboost.json": b"{}" * 100})


@pytest.fixture
def sync(ansible, fake_gcs, repo, request):
    bucket = "hostile-" + str(abs(hash(request.node.name)) % 10**10)
    fake_gcs.create_bucket(bucket)

    def run(src=None, prefix=None, **extra):
        ev = {"src": str(src or repo), "bucket": bucket, "endpoint": fake_gcs.url, **extra}
        return ansible(SYNC_PLAY, extra_vars=ev, prefix=prefix)

    run.bucket = bucket
    return run


def refused(run, *fragments):
    """The task failed with a message holding every fragment, without a traceback."""
    assert run.rc != 0, run.stdout[-3000:]
    result = run.result("sync")
    assert_no_traceback(result)
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    return result["msg"]


def test_links_leading_outside_src_are_refused_and_nothing_is_sent(sync, fake_gcs, repo, tmp_path):
    outside = make_tree(tmp_path / "elsewhere", {"secret.txt": b"not for the bucket"})
    os.symlink("/etc/passwd", repo / "fil" / "1" / "passwd")
    os.symlink(outside, repo / "fil" / "outside_dir")
    fake_gcs.mark()
    msg = refused(sync(), "fil/1/passwd: is a symbolic link to /etc/passwd, outside src",
                  "fil/outside_dir: is a symbolic link to", "nothing was uploaded or deleted")
    assert "exclude" in msg
    assert fake_gcs.writes() == []
    assert fake_gcs.names(sync.bucket) == []


def test_links_inside_src_are_followed_under_their_own_name(sync, fake_gcs, repo):
    os.symlink("xgboost.json", repo / "fil" / "1" / "alias.json")
    os.symlink("1", repo / "fil" / "2")
    run = sync()
    assert run.rc == 0, run.stdout[-3000:]
    assert fake_gcs.names(sync.bucket) == ["models/fil/1/alias.json", "models/fil/1/xgboost.json",
                                           "models/fil/2/alias.json", "models/fil/2/xgboost.json",
                                           "models/fil/config.pbtxt"]
    assert fake_gcs.read(sync.bucket, "models/fil/2/xgboost.json") == (repo / "fil/1/xgboost.json").read_bytes()


def test_broken_links_loops_and_special_files_are_named(sync, fake_gcs, repo):
    os.symlink("nowhere", repo / "fil" / "broken")
    os.symlink("..", repo / "fil" / "1" / "up")
    os.symlink("loop_b", repo / "fil" / "loop_a")
    os.symlink("loop_a", repo / "fil" / "loop_b")
    os.mkfifo(repo / "fil" / "pipe")
    fake_gcs.mark()
    refused(sync(), "fil/broken: is a broken symbolic link", "fil/1/up/: is a symbolic link loop",
            "fil/loop_a: is a symbolic link loop", "fil/pipe: is not a regular file")
    assert fake_gcs.writes() == []


def test_names_gcs_refuses_are_refused_before_any_write(sync, fake_gcs, repo):
    (repo / "fil" / "bad\nname.txt").write_bytes(b"x")
    deep = repo.joinpath(*(["d" * 250] * 5))
    deep.mkdir(parents=True)
    (deep / "model.bin").write_bytes(b"x")
    os.close(os.open(os.fsencode(repo / "fil") + b"/latin1-\xe9.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    fake_gcs.mark()
    refused(sync(), "carriage return or line feed", "over GCS's 1024", "not valid UTF-8", "rename")
    assert fake_gcs.writes() == []


@pytest.fixture
def unprivileged():
    prefix = without_file_permission_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: permission bits cannot be enforced")
    return prefix


def test_an_unreadable_folder_fails_the_run_and_its_objects_survive_delete(sync, fake_gcs, repo, unprivileged):
    make_tree(repo, {"other/config.pbtxt": b'backend: "fil"\n', "other/1/model.txt": b"tree\n"})
    assert sync(delete=True).rc == 0
    before = fake_gcs.names(sync.bucket)
    (repo / "other").chmod(0)
    try:
        fake_gcs.mark()
        refused(sync(delete=True, prefix=unprivileged), "other/: folder cannot be read (Permission denied)",
                "its objects in the bucket are kept")
        assert fake_gcs.writes() == [], "nothing may be deleted under a folder that could not be read"
        assert fake_gcs.names(sync.bucket) == before
    finally:
        (repo / "other").chmod(0o755)


def test_an_unreadable_file_fails_before_the_first_upload(sync, fake_gcs, repo, unprivileged):
    make_tree(repo, {f"many/{i:02d}.bin": bytes([i]) * 100 for i in range(10)})
    (repo / "many" / "08.bin").chmod(0)
    fake_gcs.mark()
    refused(sync(prefix=unprivileged), "many/08.bin: file cannot be read (Permission denied)", "fix its permissions")
    assert fake_gcs.writes() == [] and fake_gcs.names(sync.bucket) == []


def test_excluded_names_are_not_deleted(sync, fake_gcs, repo):
    (repo / "fil" / "notes.txt").write_bytes(b"kept locally, and in the bucket")
    assert sync().rc == 0
    run = sync(delete=True, exclude=[".*", "notes.txt"])
    result = run.result("sync")
    assert run.rc == 0 and result["deleted"] == 0 and result["extra"] == ["models/fil/notes.txt"], result
    assert "models/fil/notes.txt" in fake_gcs.names(sync.bucket)


VALIDATE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: validate
      rapids.triton_fil.triton_model_repository:
        path: "{{ path }}"
"""


@pytest.fixture
def shipped_copy(tmp_path):
    import shutil

    from testlib import REPO

    dest = tmp_path / "model_repository"
    shutil.copytree(REPO / "model_repository", dest)
    return dest


def test_unreadable_model_file_and_config_are_problems_not_tracebacks(ansible, shipped_copy, unprivileged):
    (shipped_copy / "fil" / "1" / "xgboost.json").chmod(0)
    (shipped_copy / "fil" / "configs" / "cpu.pbtxt").chmod(0)
    run = ansible(VALIDATE_PLAY, extra_vars={"path": str(shipped_copy)}, prefix=unprivileged)
    assert run.rc != 0
    result = run.result("validate")
    assert_no_traceback(result)
    assert "fil/1/xgboost.json: cannot be read (Permission denied) — fix its permissions" in result["problems"]
    assert "fil/configs/cpu.pbtxt: cannot be read (Permission denied) — fix its permissions" in result["problems"]
