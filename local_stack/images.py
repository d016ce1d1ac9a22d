"""Test images written by hand: random gzipped layers, config JSON, manifests and a multi-platform index.

No Docker and no image tool: the bytes are built here and pushed with plain HTTP calls, so the
tests know every digest and size they expect at the destination.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Blob:
    data: bytes
    media_type: str
    diff_id: str = ""

    @property
    def digest(self):
        return digest_of(self.data)

    def descriptor(self):
        return {"mediaType": self.media_type, "size": len(self.data), "digest": self.digest}


@dataclass
class Image:
    """One platform's image: a config blob, layers and the manifest bytes that name them."""

    config: Blob
    layers: list
    manifest: bytes
    media_type: str
    platform: dict = field(default_factory=dict)

    @property
    def digest(self):
        return digest_of(self.manifest)

    @property
    def blobs(self):
        return [self.config, *self.layers]


@dataclass
class Index:
    images: list
    manifest: bytes
    media_type: str

    @property
    def digest(self):
        return digest_of(self.manifest)

    @property
    def blobs(self):
        seen = {}
        for image in self.images:
            for blob in image.blobs:
                seen.setdefault(blob.digest, blob)
        return list(seen.values())


def random_layer(size, media_type=DOCKER_LAYER, name="data.bin", compresslevel=9):
    """A gzipped tar holding one file of random bytes (incompressible, so the blob is about ``size``)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        payload = os.urandom(size)
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return Blob(gzip.compress(tar_bytes, compresslevel=compresslevel, mtime=0), media_type, digest_of(tar_bytes))


def make_image(layer_sizes=(2048, 4096), arch="amd64", oci=False, layers=None, variant=None):
    layer_type = OCI_LAYER if oci else DOCKER_LAYER
    layers = list(layers) if layers is not None else [random_layer(s, layer_type) for s in layer_sizes]
    platform = {"architecture": arch, "os": "linux"}
    if variant:
        platform["variant"] = variant
    config = {**platform, "config": {"Entrypoint": ["/opt/tritonserver/bin/tritonserver"]},
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
              "history": [{"created_by": f"test layer {i}"} for i in range(len(layers))]}
    config_blob = Blob(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG if oci else DOCKER_CONFIG)
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {"schemaVersion": 2, "config": config_blob.descriptor(),
                "layers": [layer.descriptor() for layer in layers]}
    if not oci:
        manifest = {"schemaVersion": 2, "mediaType": media_type, **{k: manifest[k] for k in ("config", "layers")}}
    return Image(config_blob, layers, json.dumps(manifest, indent=3).encode(), media_type, platform)


def make_index(images, oci=True):
    media_type = OCI_INDEX if oci else DOCKER_LIST
    body = {"schemaVersion": 2, "mediaType": media_type,
            "manifests": [{"mediaType": image.media_type, "size": len(image.manifest), "digest": image.digest,
                           "platform": image.platform} for image in images]}
    return Index(images, json.dumps(body, indent=2).encode(), media_type)


def multi_platform(layer_sizes=(2048, 4096), shared_base=True, oci=True):
    """amd64 + arm64 images (sharing their first layer when shared_base) under one index."""
    layer_type = OCI_LAYER if oci else DOCKER_LAYER
    base = random_layer(1500, layer_type, "base.bin") if shared_base else None
    images = []
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        own = [random_layer(s, layer_type) for s in layer_sizes]
        images.append(make_image(arch=arch, oci=oci, variant=variant, layers=([base] if base else []) + own))
    return make_index(images, oci=oci)


SHELL_BASE_CREATED = "2024-01-01T00:00:00Z"


def _shell_files(shell="/bin/sh"):
    """The shell binary and the shared libraries it loads (ldd), as (path in the image, path on the host)."""
    import subprocess  # pylint: disable=import-outside-toplevel

    files = [shell]
    out = subprocess.run(["ldd", shell], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
        if path.startswith("/"):
            files.append(path)
    return files


def shell_base_image(shell="/bin/sh"):
    """A one-layer Docker image with this machine's /bin/sh and its libraries: a FROM image for builds whose
    RUN steps use shell builtins only (echo, printf, redirections).

    Its config and history carry a fixed `created` time: builders (podman/buildah, docker) match their
    layer cache against the base image's history, and an entry without one defeats the cache.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path in _shell_files(shell):
            real = os.path.realpath(path)
            info = tar.gettarinfo(real, arcname=path.lstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(real, "rb") as handle:
                tar.addfile(info, handle)
    tar_bytes = raw.getvalue()
    layer = Blob(gzip.compress(tar_bytes, mtime=0), DOCKER_LAYER, digest_of(tar_bytes))
    import platform as host  # pylint: disable=import-outside-toplevel
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
    platform = {"architecture": arch, "os": "linux"}
    config = {**platform, "created": SHELL_BASE_CREATED,
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
              "history": [{"created": SHELL_BASE_CREATED, "created_by": "local_stack: /bin/sh and its libraries"}]}
    config_blob = Blob(json.dumps(config, sort_keys=True).encode(), DOCKER_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config_blob.descriptor(),
                "layers": [layer.descriptor()]}
    return Image(config_blob, [layer], json.dumps(manifest, indent=3).encode(), DOCKER_MANIFEST, platform)
