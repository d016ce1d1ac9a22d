# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Registry-to-registry image copy without a daemon: resolve, plan, copy missing blobs, push manifests.

Manifests are copied byte for byte, so the destination digest equals the source digest. The plan
asks the destination first: a tag that already names the digest ends the run with no other request;
manifests of an index that the destination already has are not descended into; blobs it has are
skipped; blobs on the same registry are mounted across repositories instead of sent.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import (
    Credentials, RegistryAuthError, RegistryClient, RegistryError,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.reference import (
    InvalidReference, is_google_registry, parse_reference,
)

try:
    import requests
except ImportError:  # pragma: no cover - RegistryClient reports it
    requests = None

DEFAULT_CHUNK_SIZE = 32 * 1024 * 1024
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


def _chunks(response, size):
    buffer = bytearray()
    for piece in response.iter_content(chunk_size=1024 * 1024):
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class Mirror:
    """One copy of source to destination; ``run(check_mode)`` returns the module result."""

    def __init__(self, source, destination, src_ref, dst_ref, *, platform=None, chunk_size=DEFAULT_CHUNK_SIZE,
                 parallelism=4):
        self.src, self.dst = source, destination
        self.src_ref, self.dst_ref = src_ref, dst_ref
        self.platform = platform
        self.want = parse_platform(platform)
        self.chunk_size = max(int(chunk_size or DEFAULT_CHUNK_SIZE), 1024)
        self.parallelism = max(int(parallelism or 1), 1)
        self.dst_tag = dst_ref.tag or src_ref.tag
        self.can_mount = source.host == destination.host

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
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            sizes = list(pool.map(lambda d: self.dst.blob_size(repo, d["digest"]), descriptors))
        missing = [d for d, size in zip(descriptors, sizes) if size is None]
        return manifests, missing, len(descriptors) - len(missing)

    # --- copy --------------------------------------------------------------------------------
    def _copy_blob_once(self, descriptor):
        digest, size = descriptor["digest"], descriptor.get("size")
        src_repo, dst_repo = self.src_ref.repository, self.dst_ref.repository
        location = None
        if self.can_mount:
            mounted, location = self.dst.mount_blob(dst_repo, digest, src_repo)
            if mounted:
                return "mounted", 0
        response = self.src.get_blob(src_repo, digest)
        try:
            location = location or self.dst.start_upload(dst_repo)
            hasher, sent = hashlib.sha256(), 0
            if size is not None and 0 <= size <= self.chunk_size:
                data = response.content
                hasher.update(data)
                self._verify(digest, hasher, len(data), size)
                self.dst.finish_upload(dst_repo, location, digest, data)
                return "uploaded", len(data)
            for chunk in _chunks(response, self.chunk_size):
                hasher.update(chunk)
                location = self.dst.upload_chunk(dst_repo, location, chunk, sent)
                sent += len(chunk)
            self._verify(digest, hasher, sent, size)
            self.dst.finish_upload(dst_repo, location, digest)
            return "uploaded", sent
        finally:
            response.close()

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
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            outcomes = list(pool.map(self.copy_blob, missing))
        result["blobs_copied"] = sum(1 for kind, _n in outcomes if kind == "uploaded")
        result["blobs_mounted"] = sum(1 for kind, _n in outcomes if kind == "mounted")
        result["bytes_copied"] = sum(n for _kind, n in outcomes)
        for manifest in manifests[:-1]:
            self.dst.put_manifest(repo, manifest.digest, manifest)
        self.dst.put_manifest(repo, put_ref, target)
        result["manifests_copied"] = len(manifests)
        return result


def registry_credentials(params, prefix, ref, google_token):
    """Credentials for one side: PREFIX_username/password, else a google-auth token for Google registries."""
    options = f"{prefix}_username/{prefix}_password"
    if params.get(f"{prefix}_username"):
        return Credentials(params[f"{prefix}_username"], params.get(f"{prefix}_password"), options=options)
    if is_google_registry(ref.api_host) and params.get("auth_kind") != "anonymous":
        return Credentials("oauth2accesstoken", password_source=google_token,
                           options=f"the Google credentials (auth_kind={params.get('auth_kind')}) or {options}")
    return Credentials(options=options)


def make_client(params, role, ref, google_token, prefix=None):
    """A RegistryClient for ``ref``; role is source or destination, prefix names the credential options."""
    insecure = set(params.get("insecure_registries") or [])
    credentials = registry_credentials(params, prefix or role, ref, google_token)
    return RegistryClient(ref.registry, credentials=credentials,
                          insecure=ref.registry in insecure or ref.api_host in insecure,
                          timeout=params.get("request_timeout") or 60, max_retries=params.get("max_retries"),
                          role=role)


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
                    chunk_size=params.get("chunk_size"), parallelism=params.get("parallelism"))
    result = mirror.run(check_mode)
    result["requests"] = {"source": len(source.calls), "destination": len(destination.calls),
                          "destination_writes": len(destination.write_calls)}
    return result
