"""gcs_sync through a fault-injecting proxy in front of a real fake-gcs-server.

Each test injects faults, runs the module through ansible-playbook, then compares the bucket object by
object (size and MD5 of the downloaded bytes) with the source, and runs the sync again without faults:
it must report changed=false, proving the first run left nothing half done.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from faultproxy import (  # pylint: disable=import-error
    GcsFaultProxy, chunk_at, is_chunk, is_listing, is_multipart, is_session_start, is_status_query, named,
)

pytestmark = pytest.mark.slow  # about a minute: a dozen ansible-playbook runs moving 20 MiB through the proxy

MIB = 1024 * 1024
BIG = 20 * MIB + 12345   # three resumable chunks: 0, 8 MiB, 16 MiB
PREFIX = "models"

SYNC_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: sync
      rapids.triton_fil.gcs_sync:
        src: "{{ src }}"
        bucket: "{{ bucket }}"
        prefix: models
        delete: true
        auth_kind: anonymous
        api_endpoint: "{{ endpoint }}"
        request_timeout: "{{ request_timeout | default(10) }}"
        max_retries: 4
        parallelism: 4
"""


@pytest.fixture(scope="module")
def proxy(fake_gcs):
    with GcsFaultProxy(fake_gcs.url) as faulty:
        yield faulty


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "repo"
    files = {
        "fil/config.pbtxt": b'backend: "fil"\n',
        "fil/1/xgboost.json": os.urandom(300 * 1024),
        "big/1/model.bin": os.urandom(BIG),
        "small/a.txt": b"a" * 1000,
        "small/b.txt": b"b" * 2000,
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def assert_bucket_matches(fake_gcs, bucket, root):
    """Every object equals its file (size and MD5 of the bytes read back), and nothing else is there."""
    expected = {f"{PREFIX}/{p.relative_to(root).as_posix()}": p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file()}
    assert fake_gcs.names(bucket, PREFIX + "/") == sorted(expected)
    for name, data in expected.items():
        stored = fake_gcs.read(bucket, name)
        assert (len(stored), md5_b64(stored)) == (len(data), md5_b64(data)), f"{name} differs from its file"


@pytest.fixture
def run_sync(ansible, fake_gcs, proxy, source, request):
    bucket = "faults-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    fake_gcs.create_bucket(bucket)
    proxy.clear()
    proxy.reset()

    def run(**extra):
        ev = {"src": str(source), "bucket": bucket, "endpoint": proxy.url, **extra}
        return ansible(SYNC_PLAY, extra_vars=ev)

    run.bucket = bucket
    return run


def finish(run, fake_gcs, proxy, source, first):
    """The first run's outcome is whole; a second run without faults has nothing to do."""
    assert first.rc == 0, first.stdout[-4000:]
    assert proxy.pending == [], f"faults never hit: {proxy.pending}"
    assert proxy.violations == [], proxy.violations
    assert_bucket_matches(fake_gcs, run.bucket, source)
    again = run()
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]


def test_throttling_and_unavailable_answers_are_retried(run_sync, fake_gcs, proxy, source):
    proxy.inject("status", is_listing, status=503)
    proxy.inject("status", is_multipart, times=3, status=429)
    proxy.inject("status", is_session_start, status=503)
    proxy.inject("status", chunk_at(8 * MIB), status=503)
    first = run_sync()
    finish(run_sync, fake_gcs, proxy, source, first)


@pytest.mark.parametrize("kind", ["stored", "drop", "reset_after"])
def test_a_chunk_stored_but_answered_badly_resumes_from_the_server_range(run_sync, fake_gcs, proxy, source, kind):
    """The chunk landed; its answer did not: the upload asks the session and goes on, never re-sends it."""
    if kind == "reset_after":
        proxy.inject("reset", chunk_at(8 * MIB), after=True)
    else:
        proxy.inject(kind, chunk_at(8 * MIB))
    first = run_sync()
    assert proxy.status_queries >= 1, "the lost answer must be followed by a status query"
    finish(run_sync, fake_gcs, proxy, source, first)


def test_the_last_chunk_stored_but_unanswered_is_found_complete(run_sync, fake_gcs, proxy, source):
    proxy.inject("stored", chunk_at(16 * MIB), status=500)
    first = run_sync()
    finish(run_sync, fake_gcs, proxy, source, first)


def test_a_reset_before_the_chunk_arrives_resends_it(run_sync, fake_gcs, proxy, source):
    proxy.inject("reset", chunk_at(0))
    first = run_sync()
    finish(run_sync, fake_gcs, proxy, source, first)


def test_a_stalled_chunk_times_out_and_resumes(run_sync, fake_gcs, proxy, source):
    proxy.inject("stall", chunk_at(8 * MIB), seconds=4)
    first = run_sync(request_timeout=2)
    finish(run_sync, fake_gcs, proxy, source, first)


@pytest.mark.parametrize("first_byte", [8 * MIB, 16 * MIB], ids=["middle-chunk", "last-chunk"])
def test_an_expired_session_after_a_stall_starts_a_new_one(run_sync, fake_gcs, proxy, source, first_byte):
    """GCS drops a session (404/410) after a long stall; the file ends whole through a new session.

    On the last chunk the server had already finished the object: the run must not fail for it.
    """
    proxy.inject("stall", chunk_at(first_byte), seconds=4)
    proxy.inject("expire", is_status_query)
    first = run_sync(request_timeout=2)
    starts = [c for c in proxy.calls if c[0] == "POST" and "uploadType=resumable" in c[1]]
    assert len(starts) == 2, starts
    finish(run_sync, fake_gcs, proxy, source, first)


def test_fewer_bytes_persisted_than_sent_resumes_at_the_server_range(run_sync, fake_gcs, proxy, source):
    proxy.inject("partial", chunk_at(0), keep=3 * MIB)
    first = run_sync()
    finish(run_sync, fake_gcs, proxy, source, first)


def test_a_small_upload_stored_but_unanswered_is_accepted_by_its_md5(run_sync, fake_gcs, proxy, source):
    proxy.inject("stored", named(f"{PREFIX}/small/a.txt", is_multipart), status=503)
    proxy.inject("drop", named(f"{PREFIX}/small/b.txt", is_multipart))
    first = run_sync()
    finish(run_sync, fake_gcs, proxy, source, first)


def test_bytes_altered_once_on_the_way_are_uploaded_again(run_sync, fake_gcs, proxy, source):
    proxy.inject("corrupt", chunk_at(8 * MIB))
    proxy.inject("corrupt", named(f"{PREFIX}/small/a.txt", is_multipart))
    first = run_sync()
    finish(run_sync, fake_gcs, proxy, source, first)


def test_an_object_that_stays_corrupt_is_removed_and_named(run_sync, fake_gcs, proxy, source):
    proxy.inject("corrupt", lambda ex: is_chunk(ex, 8 * MIB), times=2)
    failed = run_sync()
    assert failed.rc != 0
    msg = failed.result("sync")["msg"]
    assert f"gs://{run_sync.bucket}/{PREFIX}/big/1/model.bin" in msg and "removed" in msg, msg
    assert f"{PREFIX}/big/1/model.bin" not in fake_gcs.names(run_sync.bucket, PREFIX + "/")
    healed = run_sync()
    assert healed.rc == 0 and healed.result("sync")["uploaded"] == 1, healed.stdout[-3000:]
    finish(run_sync, fake_gcs, proxy, source, healed)
