"""Bucket update planning and sync planning, pure logic."""

from __future__ import annotations

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.bucket import desired_bucket, plan_bucket_update
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import check_bucket_name, file_md5_b64
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.runner import run_sync
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.sync import plan_sync

PARAMS = {"name": "b", "location": "us", "storage_class": None, "uniform_access": True,
          "public_access_prevention": "enforced", "labels": {"app": "x"}, "versioning": None}


def test_bucket_plan_patches_only_what_differs():
    actual = {"name": "b", "location": "US", "labels": {"app": "y"},
              "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True}, "publicAccessPrevention": "enforced"}}
    patch, changes, unverified = plan_bucket_update(desired_bucket(PARAMS), actual)
    assert patch == {"labels": {"app": "x"}}
    assert changes == [{"field": "labels", "before": {"app": "y"}, "after": {"app": "x"}}]
    assert unverified == []


def test_bucket_plan_reports_fields_the_server_omits_instead_of_rewriting_them():
    actual = {"name": "b", "location": "US", "labels": {"app": "x"}}
    patch, changes, unverified = plan_bucket_update(desired_bucket(PARAMS), actual)
    assert patch == {} and changes == []
    assert unverified == ["iamConfiguration.uniformBucketLevelAccess.enabled", "iamConfiguration.publicAccessPrevention"]


def test_bucket_location_change_is_refused_with_the_fix():
    with pytest.raises(GcpError, match="location cannot change .* set location to EU"):
        plan_bucket_update(desired_bucket(PARAMS), {"name": "b", "location": "EU"})


@pytest.mark.parametrize("name,fragment", [
    ("gs://b", "drop the 'gs://' prefix"), ("Upper", "not a valid bucket name"), ("", "is empty"),
    ("googbucket", "not a valid bucket name"),
])
def test_bucket_names_are_checked(name, fragment):
    assert fragment in check_bucket_name(name)


def test_valid_bucket_name_passes():
    assert check_bucket_name("my-project-triton-models") is None


class ListingOnly:
    """A GcsClient stand-in for planning: planning only ever lists."""

    def __init__(self, objects):
        self.objects = objects

    def list_objects(self, bucket, prefix=""):
        return {k: v for k, v in self.objects.items() if k.startswith(prefix)}


def test_sync_plan_compares_size_and_md5(tmp_path):
    (tmp_path / "m/1").mkdir(parents=True)
    (tmp_path / "m/config.pbtxt").write_bytes(b"same")
    (tmp_path / "m/1/model.json").write_bytes(b"changed!")
    (tmp_path / "m/new.txt").write_bytes(b"n")
    same_md5 = file_md5_b64(tmp_path / "m/config.pbtxt")
    remote = {
        "p/m/config.pbtxt": {"size": 4, "md5Hash": same_md5, "generation": "1"},
        "p/m/1/model.json": {"size": 8, "md5Hash": "AAAAAAAAAAAAAAAAAAAAAA==", "generation": "2"},
        "p/m/gone.txt": {"size": 1, "md5Hash": "x", "generation": "3"},
    }
    plan = plan_sync(ListingOnly(remote), tmp_path, "bkt", "/p/", delete=False)
    assert [(a.name, a.reason) for a in plan.actions] == [("p/m/1/model.json", "md5"), ("p/m/new.txt", "new")]
    assert plan.unchanged == ["p/m/config.pbtxt"] and plan.extra == ["p/m/gone.txt"]
    assert plan.actions[0].generation == "2"   # replace only the generation we compared
    pruning = plan_sync(ListingOnly(remote), tmp_path, "bkt", "p", delete=True)
    assert [(a.op, a.name) for a in pruning.deletes] == [("delete", "p/m/gone.txt")]


def test_recorded_mtime_skips_hashing_and_checksum_mode_does_not(tmp_path, monkeypatch):
    import os

    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs import sync

    path = tmp_path / "m.bin"
    path.write_bytes(b"abcd")
    mtime = os.stat(path).st_mtime_ns
    md5 = file_md5_b64(path)
    hashed = []
    monkeypatch.setattr(sync, "file_md5_b64", lambda p: hashed.append(p) or md5)
    remote = {"m.bin": {"size": 4, "md5Hash": md5, "generation": "1", "metadata": {sync.MTIME_KEY: str(mtime)}}}
    plan = plan_sync(ListingOnly(remote), tmp_path, "b", "", compare="auto")
    assert plan.unchanged == ["m.bin"] and hashed == []
    plan = plan_sync(ListingOnly(remote), tmp_path, "b", "", compare="checksum")
    assert plan.unchanged == ["m.bin"] and len(hashed) == 1
    # Same size, new content, new mtime: hashed and re-sent.
    path.write_bytes(b"wxyz")
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    monkeypatch.setattr(sync, "file_md5_b64", file_md5_b64)
    plan = plan_sync(ListingOnly(remote), tmp_path, "b", "", compare="auto")
    assert [(a.name, a.reason) for a in plan.actions] == [("m.bin", "md5")]


class RecordingUploads(ListingOnly):
    """Planning lists; execution records what each upload would send (name, md5)."""

    def __init__(self, objects):
        super().__init__(objects)
        self.sent = []

    def upload(self, bucket, name, path, md5_b64, size, **_kwargs):
        self.sent.append((name, md5_b64, size))


def test_new_files_are_hashed_by_the_upload_workers_and_sent_with_their_md5(tmp_path):
    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.sync import execute_plan

    for index in range(5):
        (tmp_path / f"part_{index}.bin").write_bytes(bytes([index]) * (1000 + index))
    client = RecordingUploads({})
    plan = plan_sync(client, tmp_path, "b", "p")
    assert [a.reason for a in plan.actions] == ["new"] * 5
    assert all(a.md5 is None for a in plan.actions), "planning does not read files it has nothing to compare with"
    assert "md5" not in plan.diff()["after"]
    execute_plan(client, plan, parallelism=3)
    expected = {(f"p/part_{i}.bin", file_md5_b64(tmp_path / f"part_{i}.bin"), 1000 + i) for i in range(5)}
    assert set(client.sent) == expected
    assert all(f"md5 {md5}" in plan.diff()["after"] for _name, md5, _size in expected)


def test_excluded_remote_objects_are_never_deleted(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_bytes(b"c")
    remote = {"p/m/notes.txt": {"size": 1, "md5Hash": "x", "generation": "1"},
              "p/m/.cache/blob": {"size": 1, "md5Hash": "x", "generation": "2"},
              "p/m/gone.txt": {"size": 1, "md5Hash": "x", "generation": "3"}}
    plan = plan_sync(ListingOnly(remote), tmp_path, "b", "p", delete=True, exclude=[".*", "notes.txt"])
    assert [a.name for a in plan.deletes] == ["p/m/gone.txt"]
    assert plan.extra == ["p/m/.cache/blob", "p/m/notes.txt"]


@pytest.mark.parametrize("name,fragment", [
    ("a\rb", "carriage return or line feed"), ("a\nb", "carriage return or line feed"),
    ("x" * 1025, "over GCS's 1024"), ("é" * 513, "1026 bytes of UTF-8"), (".well-known/acme-challenge/x", "reserved"),
    ("bad\udce9", "not valid UTF-8"),
])
def test_object_names_gcs_refuses(name, fragment):
    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import check_object_name

    assert fragment in check_object_name(name)


def test_object_names_gcs_accepts():
    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import check_object_name

    assert check_object_name("x" * 1024) is None and check_object_name("models/fil/1/xgboost.json") is None


def test_persisted_bytes_reads_the_308_range():
    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import persisted_bytes

    class Answer:
        def __init__(self, headers):
            self.headers = headers

    assert persisted_bytes(Answer({}), "ctx") == 0
    assert persisted_bytes(Answer({"Range": "bytes=0-8388607"}), "ctx") == 8 * 1024 * 1024
    with pytest.raises(GcpError, match="unexpected Range header 'bytes=5-9'"):
        persisted_bytes(Answer({"Range": "bytes=5-9"}), "ctx")


def test_a_stored_object_is_compared_with_the_file():
    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import GcsIntegrityError, check_stored

    check_stored({"size": "4", "md5Hash": "abc"}, "b", "o", 4, "abc")
    with pytest.raises(GcsIntegrityError, match=r"gs://b/o: the server stored 5 bytes with MD5 zzz, the local file "
                                                r"has 4 bytes with MD5 abc"):
        check_stored({"size": "5", "md5Hash": "zzz"}, "b", "o", 4, "abc")


def test_a_session_that_never_persists_anything_is_given_up(tmp_path):
    """A server answering every chunk 308 without a Range (nothing persisted) ends in an error, not a loop."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpSession
    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import GcsClient, SIMPLE_UPLOAD_LIMIT

    puts = []

    class Stuck(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/session")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_PUT(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            puts.append(self.headers.get("Content-Range"))
            self.send_response(308)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stuck)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (SIMPLE_UPLOAD_LIMIT + 1))
    try:
        client = GcsClient(GcpSession({"auth_kind": "anonymous", "max_retries": 2, "request_timeout": 5},
                                      sleep=lambda _s: None), f"http://127.0.0.1:{httpd.server_address[1]}")
        with pytest.raises(GcpError, match="keeps answering 308 without persisting more than 0 of"):
            client.upload("b", "o", str(path), file_md5_b64(path), SIMPLE_UPLOAD_LIMIT + 1)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert puts == [f"bytes 0-{8 * 1024 * 1024 - 1}/{SIMPLE_UPLOAD_LIMIT + 1}"] * 3


class WithBucket(ListingOnly):
    def get_bucket(self, name):
        return {"name": name}


@pytest.mark.parametrize("prefix,expected", [("/triton/models/", "triton/models"), ("", "")])
def test_sync_returns_the_bucket_and_prefix_it_synced(tmp_path, prefix, expected):
    """gcs_models hands these over as triton_fil_model_repository; nobody parses the URL again."""
    (tmp_path / "a.txt").write_text("x")
    result = run_sync(WithBucket({}), {"src": str(tmp_path), "bucket": "b", "prefix": prefix, "delete": False,
                                       "parallelism": 1}, check_mode=True)
    assert (result["bucket"], result["prefix"]) == ("b", expected)
    assert result["url"] == ("gs://b/" + expected).rstrip("/")
