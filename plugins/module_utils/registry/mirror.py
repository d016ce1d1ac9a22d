# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Registry-to-registry image copy without a daemon: resolve, plan, copy missing blobs, push manifests.

Manifests are copied byte for byte, so the destination digest equals the source digest. The plan
asks the destination first: a tag that already names the digest ends the run with no other request;
manifests of an index that the destination already has are not descended into; blobs it has are
skipped. A missing blob is mounted instead of sent when the destination registry already holds it
in a repository these credentials can read: the source repository when both are on one registry,
the repositories listed in mount_from, and those where earlier copies left it (the blob-location
cache, as containers/image keeps one for skopeo and podman), each confirmed with a HEAD first.

Every other blob is streamed: a reader thread downloads it into a small bounded queue while the
upload sends what has arrived (one PATCH with the blob's length, or chunk_size pieces), hashing on
the way; the upload is committed (PUT ?digest=) only when the bytes hash to the digest. The
largest blobs start first, so no large layer runs alone at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import (
    RegistryAuthError, RegistryError, make_client,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.reference import (
    InvalidReference, parse_reference,
)

try:
    import requests
except ImportError:  # pragma: no cover - RegistryClient reports it
    requests = None

DEFAULT_CHUNK_SIZE = 0  # one streamed PATCH per blob, as docker push and skopeo send it
MIN_CHUNK_SIZE = 1024
PIECE = 1024 * 1024  # read/send unit of a streamed blob
SMALL_BLOB = 1024 * 1024  # blobs up to this size (configs, small layers) are read whole and sent in one PUT
PREFETCH_DEPTH = 8  # pieces a blob's reader thread may run ahead of its upload (bounded memory)
DEFAULT_BLOB_CACHE = "~/.cache/rapids.triton_fil/blob-locations.json"
MAX_MOUNT_CANDIDATES = 3  # repositories asked (HEAD) per missing blob
BLOB_ATTEMPTS = 3
_DEFAULT_VARIANT = {"arm64": "v8"}
_MAX_INDEX_DEPTH = 4


class RegistryIntegrityError(RegistryError):
    """Bytes that do not hash to their digest: never retried, never pushed."""


def parse_platform(text, option="platform"):
    """None for 'all' (or empty); else {os, architecture, variant}."""
    if not text or text == "all":
        return None
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise RegistryError(f"{option} {text!r} must be OS/ARCHITECTURE[/VARIANT] such as linux/amd64 or "
                            "linux/arm64, or 'all' to copy every platform of an index")
    return {"os": parts[0], "architecture": parts[1], "variant": parts[2] if len(parts) == 3 else None}


def platform_matches(want, have):
    have = have or {}
    if have.get("os") != want["os"] or have.get("architecture") != want["architecture"]:
        return False
    if want.get("variant"):
        return (have.get("variant") or _DEFAULT_VARIANT.get(have.get("architecture"))) == want["variant"]
    return True


def platform_text(platform):
    platform = platform or {}
    parts = [platform.get("os") or "unknown", platform.get("architecture") or "unknown"]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)


class BlobReader:
    """A source blob response read on its own thread into a bounded queue: the download runs ahead of the
    upload by at most PREFETCH_DEPTH pieces, so the two overlap and memory stays bounded."""

    _END = object()

    def __init__(self, response, depth=PREFETCH_DEPTH):
        self._response = response
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._left = b""
        self._done = False
        self.error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            for piece in self._response.iter_content(chunk_size=PIECE):
                if piece and not self._put(piece):
                    return
        except Exception as exc:  # pylint: disable=broad-exception-caught  # handed to the uploading thread
            self.error = exc
        finally:
            self._put(self._END)

    def read(self, size):
        """Up to size bytes; b"" at the end of the blob."""
        if not self._left and not self._done:
            item = self._queue.get()
            if item is self._END:
                self._done = True
                if self.error is not None:
                    raise self.error
            else:
                self._left = item
        piece, self._left = self._left[:size], self._left[size:]
        return piece

    def close(self):
        self._stop.set()
        self._response.close()
        self._thread.join(5)


class StreamBody:
    """A request body of a known length read from a BlobReader while it is sent, hashed on the way.

    requests sends an iterable with a length as it is (Content-Length, no chunked encoding). It can be
    sent once: a request that would send it again (a retry) fails the blob, which is restarted whole.
    """

    def __init__(self, reader, length, hasher, digest):
        self.reader, self.length, self.hasher, self.digest = reader, length, hasher, digest
        self.sent = 0
        self._used = False

    def __len__(self):
        return self.length

    def __iter__(self):
        if self._used:
            raise RegistryError(f"blob {self.digest}: an upload request was about to be sent again with a "
                                "consumed stream; the blob is copied again from the start")
        self._used = True
        while self.sent < self.length:
            piece = self.reader.read(min(PIECE, self.length - self.sent))
            if not piece:
                raise RegistryIntegrityError(f"source blob {self.digest} ended after {self.sent} bytes of a "
                                             f"{self.length}-byte upload; nothing was pushed for it")
            self.hasher.update(piece)
            self.sent += len(piece)
            yield piece


class BlobLocations:
    """Which repositories of which registry held a blob after earlier copies (a JSON file, like the blob info
    cache containers/image keeps for skopeo and podman). Only hints: a candidate is confirmed with HEAD."""

    MAX_DIGESTS = 20000  # per registry; the oldest are forgotten
    MAX_REPOSITORIES = 8  # per digest, most recent first

    def __init__(self, path):
        self.path = os.path.expanduser(path) if path else None
        self.data = self._read() if self.path else {}

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as handle:
                body = json.load(handle)
        except (OSError, ValueError):
            return {}
        registries = body.get("registries") if isinstance(body, dict) else None
        return registries if isinstance(registries, dict) else {}

    def candidates(self, host, digest, exclude=()):
        return [repo for repo in (self.data.get(host) or {}).get(digest) or [] if repo not in exclude]

    def save(self, records):
        """Merge records [(host, repository, digests)] into the file (re-read under a lock, replaced atomically)."""
        if not self.path or not records:
            return None
        try:
            import fcntl  # pylint: disable=import-outside-toplevel  # POSIX; without it the cache is skipped
            directory = os.path.dirname(self.path) or "."
            os.makedirs(directory, mode=0o700, exist_ok=True)
            with open(self.path + ".lock", "a", encoding="utf-8") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                data = self._read()
                for host, repository, digests in records:
                    known = data.setdefault(host, {})
                    for digest in digests:
                        repos = [repository] + [r for r in known.pop(digest, []) if r != repository]
                        known[digest] = repos[:self.MAX_REPOSITORIES]  # re-inserted: newest last
                    for stale in list(known)[:max(len(known) - self.MAX_DIGESTS, 0)]:
                        del known[stale]
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=".blob-locations.")
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump({"version": 1, "registries": data}, out)
                os.replace(tmp, self.path)
                self.data = data
        except ImportError:
            return None
        except OSError as exc:  # a cache never fails a copy that succeeded
            return (f"blob_cache {self.path!r} was not updated ({exc}); the copy itself succeeded — set blob_cache "
                    "to a writable path, or to an empty string to keep no cache")
        return None


class Mirror:
    """One copy of source to destination; ``run(check_mode)`` returns the module result."""

    def __init__(self, source, destination, src_ref, dst_ref, *, platform=None, chunk_size=DEFAULT_CHUNK_SIZE,
                 parallelism=4, mount_from=(), locations=None):
        self.src, self.dst = source, destination
        self.src_ref, self.dst_ref = src_ref, dst_ref
        self.platform = platform
        self.want = parse_platform(platform)
        self.chunk_size = max(int(chunk_size), MIN_CHUNK_SIZE) if chunk_size else 0
        self.parallelism = max(int(parallelism or 1), 1)
        self.dst_tag = dst_ref.tag or src_ref.tag
        self.same_registry = source.host == destination.host
        self.mount_from = [repo for repo in mount_from or () if repo and repo != dst_ref.repository]
        self.locations = locations or BlobLocations(None)
        self.mount_sources = {}  # digest -> repository of the destination registry to mount it from
        self.all_blobs = []  # every blob of the pushed manifests, for the location cache

    # --- resolve -----------------------------------------------------------------------------
    def _source_manifest(self, ref, what):
        manifest = self.src.get_manifest(self.src_ref.repository, ref)
        if manifest is None:
            raise RegistryError(f"source image {what} was not found on {self.src_ref.registry} — check the repository "
                                "and the tag or digest in 'source'")
        if ref.startswith("sha256:") and manifest.digest != ref:
            raise RegistryIntegrityError(f"source registry served {manifest.digest} for {what}, which was asked by "
                                         f"digest {ref}: the bytes do not match")
        return manifest

    def _config_platform(self, manifest):
        config = manifest.config or {}
        if not config.get("digest"):
            return {}
        response = self.src.get_blob(self.src_ref.repository, config["digest"])
        try:
            body = json.loads(response.content)
        except ValueError:
            return {}
        finally:
            response.close()
        return {"os": body.get("os"), "architecture": body.get("architecture"), "variant": body.get("variant")}

    def resolve(self):
        """(top manifest the source reference names, manifest to push, platforms it covers)."""
        top = self._source_manifest(self.src_ref.ref, str(self.src_ref))
        if self.want is None:
            return top, top, [platform_text(c.get("platform")) for c in top.children]
        if top.is_index:
            matches = [c for c in top.children if platform_matches(self.want, c.get("platform"))]
            if not matches:
                available = sorted({platform_text(c.get("platform")) for c in top.children})
                raise RegistryError(f"source {self.src_ref} has no {self.platform} image (it has {', '.join(available)})"
                                    " — set platform to one of those, or to 'all'")
            child = matches[0]
            target = self._source_manifest(child["digest"], f"{self.src_ref.name}@{child['digest']}")
            return top, target, [platform_text(child.get("platform"))]
        have = self._config_platform(top)
        if have.get("os") and not platform_matches(self.want, have):
            raise RegistryError(f"source {self.src_ref} is a single {platform_text(have)} image, not {self.platform} "
                                f"— set platform to {platform_text(have)} or 'all'")
        return top, top, [self.platform]

    # --- plan --------------------------------------------------------------------------------
    def plan(self, target):
        """(manifests to push children first, missing blob descriptors, present blob count)."""
        repo = self.dst_ref.repository
        manifests, wanted = [], {}

        def visit(manifest, depth):
            if manifest.is_index:
                if depth > _MAX_INDEX_DEPTH:
                    raise RegistryError(f"source {self.src_ref} nests indexes deeper than {_MAX_INDEX_DEPTH} levels")
                for child in manifest.children:
                    if self.dst.manifest_digest(repo, child["digest"]) == child["digest"]:
                        continue
                    visit(self._source_manifest(child["digest"], f"{self.src_ref.name}@{child['digest']}"), depth + 1)
            else:
                for blob in manifest.blobs:
                    wanted.setdefault(blob["digest"], blob)
            manifests.append(manifest)

        if self.dst.manifest_digest(repo, target.digest) == target.digest:
            return [target], [], 0  # the manifest is there under another name: only the tag moves
        visit(target, 0)
        descriptors = list(wanted.values())
        self.all_blobs = [d["digest"] for d in descriptors]
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            sizes = list(pool.map(lambda d: self.dst.blob_size(repo, d["digest"]), descriptors))
            missing = [d for d, size in zip(descriptors, sizes) if size is None]
            self._find_mount_sources(pool, missing)
        # Largest first: the big layers overlap each other instead of the last one running alone.
        missing.sort(key=lambda d: -(d.get("size") or 0))
        return manifests, missing, len(descriptors) - len(missing)

    def _candidates(self, digest):
        """Repositories of the destination registry that may hold digest, most likely first."""
        found = []
        exclude = {self.dst_ref.repository}
        for repo in self.mount_from + self.locations.candidates(self.dst.host, digest, exclude):
            if repo not in found and repo not in exclude:
                found.append(repo)
        return found[:MAX_MOUNT_CANDIDATES]

    def _find_mount_sources(self, pool, missing):
        """For each missing blob, a repository of the destination registry that holds it (HEAD), to mount from."""
        if self.same_registry:  # the source repository has every blob: no need to ask
            for descriptor in missing:
                self.mount_sources[descriptor["digest"]] = self.src_ref.repository
            return
        asks = [(d["digest"], repo) for d in missing for repo in self._candidates(d["digest"])]
        if not asks:
            return

        def holds(ask):
            try:
                return self.dst.blob_size(ask[1], ask[0], read_only=True) is not None
            except RegistryAuthError:  # a repository these credentials may not read (its token refused)
                return False

        held = pool.map(holds, asks)
        for (digest, repo), present in zip(asks, held):
            if present:
                self.mount_sources.setdefault(digest, repo)

    # --- copy --------------------------------------------------------------------------------
    def _copy_blob_once(self, descriptor):
        digest, size = descriptor["digest"], descriptor.get("size")
        src_repo, dst_repo = self.src_ref.repository, self.dst_ref.repository
        location = None
        mount_from = self.mount_sources.get(digest)
        if mount_from:
            mounted, location = self.dst.mount_blob(dst_repo, digest, mount_from)
            if mounted:
                return "mounted", 0
        response = self.src.get_blob(src_repo, digest)
        if size is None or size < 0:
            length = response.headers.get("Content-Length", "")
            size = int(length) if length.isdigit() else None
        if size is None or (size <= SMALL_BLOB and not (self.chunk_size and size > self.chunk_size)):
            try:
                data = response.content
            finally:
                response.close()
            hasher = hashlib.sha256(data)
            self._verify(digest, hasher, len(data), size)
            location = location or self.dst.start_upload(dst_repo)
            self.dst.finish_upload(dst_repo, location, digest, data)
            return "uploaded", len(data)
        reader = BlobReader(response)
        committed = False
        try:
            location = location or self.dst.start_upload(dst_repo)
            hasher, sent = hashlib.sha256(), 0
            step = self.chunk_size if self.chunk_size and size > self.chunk_size else size
            while sent < size:
                body = StreamBody(reader, min(step, size - sent), hasher, digest)
                location = self.dst.upload_stream(dst_repo, location, body, offset=sent if step < size else None)
                sent += body.sent
            if reader.read(1):
                raise RegistryIntegrityError(f"source blob {digest} of {self.src_ref} is longer than its "
                                             f"descriptor's {size} bytes; nothing was pushed for it")
            self._verify(digest, hasher, sent, size)
            self.dst.finish_upload(dst_repo, location, digest)
            committed = True
            return "uploaded", sent
        finally:
            reader.close()
            if location and not committed:
                self.dst.cancel_upload(location, dst_repo)

    def _verify(self, digest, hasher, got, size):
        if "sha256:" + hasher.hexdigest() != digest or (size is not None and size >= 0 and got != size):
            raise RegistryIntegrityError(f"source blob {digest} of {self.src_ref} arrived as {got} bytes hashing to "
                                         f"sha256:{hasher.hexdigest()}; nothing was pushed for it")

    def copy_blob(self, descriptor):
        last = None
        for _attempt in range(BLOB_ATTEMPTS):
            try:
                return self._copy_blob_once(descriptor)
            except (RegistryAuthError, RegistryIntegrityError):
                raise
            except RegistryError as exc:
                last = exc
            except requests.RequestException as exc:
                last = RegistryError(f"blob {descriptor['digest']}: {type(exc).__name__}: {exc}")
        raise RegistryError(f"copying blob {descriptor['digest']} failed {BLOB_ATTEMPTS} times: {last}")

    # --- run ---------------------------------------------------------------------------------
    def run(self, check_mode):
        top, target, platforms = self.resolve()
        repo = self.dst_ref.repository
        put_ref = self.dst_tag or target.digest
        before = self.dst.manifest_digest(repo, put_ref)
        result = {
            "digest": target.digest,
            "ref": self.dst_ref.with_digest(target.digest),
            "repository": self.dst_ref.name,
            "tag": self.dst_tag,
            "media_type": target.media_type,
            "source_digest": top.digest,
            "platforms": platforms,
            "previous_digest": before,
            "manifests_copied": 0, "blobs_planned": 0, "bytes_planned": 0, "blobs_copied": 0,
            "blobs_mounted": 0, "blobs_skipped": 0, "bytes_copied": 0,
            "diff": {"before": {"image": f"{self.dst_ref.name}:{put_ref}", "digest": before},
                     "after": {"image": f"{self.dst_ref.name}:{put_ref}", "digest": target.digest}},
        }
        if before == target.digest:
            result["changed"] = False
            return result
        manifests, missing, present = self.plan(target)
        result.update(changed=True, blobs_planned=len(missing), blobs_skipped=present,
                      bytes_planned=sum(max(d.get("size") or 0, 0) for d in missing))
        if check_mode:
            return result
        if missing:
            with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
                outcomes = list(pool.map(self.copy_blob, missing))
        else:
            outcomes = []
        result["blobs_copied"] = sum(1 for kind, _n in outcomes if kind == "uploaded")
        result["blobs_mounted"] = sum(1 for kind, _n in outcomes if kind == "mounted")
        result["bytes_copied"] = sum(n for _kind, n in outcomes)
        for manifest in manifests[:-1]:
            self.dst.put_manifest(repo, manifest.digest, manifest)
        self.dst.put_manifest(repo, put_ref, target)
        result["manifests_copied"] = len(manifests)
        warning = self.locations.save([(self.dst.host, repo, self.all_blobs),
                                       (self.src.host, self.src_ref.repository, self.all_blobs)])
        if warning:
            result["warnings"] = [warning]
        return result


def check_chunk_size(params):
    """The module's input check: chunk_size is 0 (one streamed upload per blob) or at least MIN_CHUNK_SIZE."""
    chunk_size = params["chunk_size"]
    if chunk_size < 0 or 0 < chunk_size < MIN_CHUNK_SIZE:
        return [f"chunk_size={chunk_size} is not usable — give 0 (one streamed upload per blob, the default) or at "
                f"least {MIN_CHUNK_SIZE} bytes"]
    return []


def run_mirror(params, check_mode, google_token):
    """The container_image_mirror module's flow; raises RegistryError with a fail_json message."""
    try:
        src_ref = parse_reference(params["source"], "source")
        dst_ref = parse_reference(params["destination"], "destination")
    except InvalidReference as exc:
        raise RegistryError(str(exc)) from exc
    if dst_ref.digest:
        raise RegistryError(f"destination {params['destination']!r} names a digest — give a repository with an "
                            "optional tag (the digest is the source's and is returned as 'digest')")
    source = make_client(params, "source", src_ref, google_token)
    destination = make_client(params, "destination", dst_ref, google_token)
    mirror = Mirror(source, destination, src_ref, dst_ref, platform=params.get("platform"),
                    chunk_size=params.get("chunk_size"), parallelism=params.get("parallelism"),
                    mount_from=params.get("mount_from") or (), locations=BlobLocations(params.get("blob_cache")))
    result = mirror.run(check_mode)
    result["requests"] = {"source": len(source.calls), "destination": len(destination.calls),
                          "destination_writes": len(destination.write_calls)}
    return result
