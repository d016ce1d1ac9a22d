"""The streamed copy's parts: the reader runs ahead of the upload by a bounded number of pieces, the body
hashes what it sends, refuses to be sent twice, and the blob-location cache merges and caps its entries."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import RegistryError
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.mirror import (
    BlobLocations, BlobReader, RegistryIntegrityError, StreamBody,
)


class _Source:
    """A response whose iter_content records how far the download got."""

    def __init__(self, pieces, piece_size=1024):
        self.pieces, self.piece_size = pieces, piece_size
        self.produced = 0
        self.closed = False

    def iter_content(self, chunk_size):
        for i in range(self.pieces):
            self.produced += 1
            yield bytes([i % 256]) * self.piece_size

    def close(self):
        self.closed = True


def test_download_runs_ahead_of_the_upload_by_at_most_the_queue_depth():
    source = _Source(pieces=50)
    reader = BlobReader(source, depth=4)
    try:
        time.sleep(0.2)  # the upload has not read anything yet
        assert 4 <= source.produced <= 6, "the reader thread fills the bounded queue and waits"
        body = StreamBody(reader, 50 * 1024, hashlib.sha256(), "sha256:x")
        seen = []
        for piece in body:
            seen.append(source.produced)
            assert len(piece) <= 1024
        assert seen[0] < 50, "the first piece went up before the last one came down"
        assert body.sent == 50 * 1024 and reader.read(1) == b""
    finally:
        reader.close()
    assert source.closed


def test_the_body_hashes_what_it_sends_and_is_sent_once():
    data = b"abc" * 1000
    source = _Source(pieces=0)
    source.iter_content = lambda chunk_size: iter([data[:1000], data[1000:]])
    reader = BlobReader(source)
    hasher = hashlib.sha256()
    body = StreamBody(reader, len(data), hasher, "sha256:x")
    assert len(body) == len(data) and b"".join(body) == data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    with pytest.raises(RegistryError, match="consumed stream"):
        list(body)
    reader.close()


def test_a_short_source_fails_the_upload_instead_of_hanging():
    source = _Source(pieces=2)
    reader = BlobReader(source)
    body = StreamBody(reader, 4096, hashlib.sha256(), "sha256:short")
    with pytest.raises(RegistryIntegrityError, match="ended after 2048 bytes"):
        list(body)
    reader.close()


def test_a_failing_download_reaches_the_uploading_thread():
    class Broken(_Source):
        def iter_content(self, chunk_size):
            yield b"x" * 10
            raise ConnectionError("source dropped the connection")

    reader = BlobReader(Broken(0))
    body = StreamBody(reader, 100, hashlib.sha256(), "sha256:b")
    with pytest.raises(ConnectionError, match="dropped"):
        list(body)
    reader.close()


def test_blob_locations_merge_newest_first_and_cap(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "locations.json"
    monkeypatch.setattr(BlobLocations, "MAX_DIGESTS", 3)
    first = BlobLocations(str(path))
    assert first.candidates("r:5000", "sha256:a") == []
    assert first.save([("r:5000", "one/app", ["sha256:a", "sha256:b"])]) is None
    second = BlobLocations(str(path))
    second.save([("r:5000", "two/app", ["sha256:a", "sha256:c", "sha256:d"])])
    data = json.loads(path.read_text())["registries"]["r:5000"]
    assert data["sha256:a"] == ["two/app", "one/app"] and "sha256:b" not in data, "oldest digest forgotten"
    assert BlobLocations(str(path)).candidates("r:5000", "sha256:a", exclude={"two/app"}) == ["one/app"]
    assert BlobLocations("").save([("r", "x", ["d"])]) is None and not (tmp_path / "x").exists()


def test_an_unwritable_cache_warns_and_never_fails_the_copy(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    warning = BlobLocations(str(blocker / "locations.json")).save([("r", "x", ["sha256:a"])])
    assert warning and "blob_cache" in warning and "the copy itself succeeded" in warning


def test_concurrent_saves_keep_every_entry(tmp_path):
    path = tmp_path / "locations.json"
    threads = [threading.Thread(target=lambda i=i: BlobLocations(str(path)).save([("r", f"repo{i}", [f"sha256:{i}"])]))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(json.loads(path.read_text())["registries"]["r"]) == 8
