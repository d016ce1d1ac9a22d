# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""container_image_build: build with the Docker SDK, push with registry credentials, skip what is there.

Idempotence: the build itself is cached by the engine (an unchanged context gives the same image
id); the push is skipped when the registry's tag already names this image: a digest the local image
carries in its RepoDigests (dockerd records what it pushed), or a manifest whose config digest is
the image id (an image id is the digest of its config; podman does not record pushed digests).
"""

from __future__ import annotations

import os

from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import RegistryError, make_client
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.reference import (
    InvalidReference, parse_reference,
)

try:
    import docker
    import docker.errors
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = exc

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def no_daemon_message(docker_host, error):
    return (
        f"no Docker daemon is reachable at docker_host={docker_host} ({error}). "
        "Set docker_host (or DOCKER_HOST) to a running daemon — unix:///var/run/docker.sock, tcp://HOST:2376 "
        "or ssh://USER@HOST — or, where no daemon exists, copy the prebuilt NGC Triton image (it includes the "
        "FIL backend) registry-to-registry without a daemon: role gcr_image with gcr_image_mode: mirror, or the "
        "rapids.triton_fil.container_image_mirror module"
    )


def connect(docker_host, timeout):
    """A DockerClient that answered a ping; RegistryError with the no-daemon message otherwise."""
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=timeout, version="auto")
        client.ping()
    except docker.errors.DockerException as exc:
        raise RegistryError(no_daemon_message(docker_host, exc)) from exc
    except Exception as exc:  # pylint: disable=broad-exception-caught  # requests/urllib3/paramiko errors
        raise RegistryError(no_daemon_message(docker_host, f"{type(exc).__name__}: {exc}")) from exc
    return client


def _local_image(client, tag):
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def _carries(image, name, digest):
    return bool(image and digest and f"{name}@{digest}" in (image.attrs.get("RepoDigests") or []))


class _Remote:
    """The registry side of one build: the tag's digest and, asked once, the config digest it names."""

    def __init__(self, client, ref):
        self.client, self.ref = client, ref
        self.digest = client.manifest_digest(ref.repository, ref.tag) if client else None
        self._config = False

    def config_digest(self):
        if self._config is False:
            manifest = self.client.get_manifest(self.ref.repository, self.digest) if self.digest else None
            config = manifest.config if manifest is not None and not manifest.is_index else None
            self._config = (config or {}).get("digest")
        return self._config

    def holds(self, image):
        """True when the tag already names this local image."""
        if image is None or self.digest is None:
            return False
        return _carries(image, self.ref.name, self.digest) or image.id == self.config_digest()


def _push(client, ref, credentials):
    auth = None
    pair = credentials.pair()
    if pair:
        auth = {"username": pair[0], "password": pair[1]}
    digest = None
    for line in client.images.push(ref.name, tag=ref.tag, stream=True, decode=True, auth_config=auth):
        if line.get("error"):
            detail = line.get("errorDetail", {}).get("message") or line["error"]
            raise RegistryError(f"pushing {ref} failed: {detail} — check the registry credentials "
                                f"({credentials.options})")
        aux = line.get("aux") or {}
        digest = aux.get("Digest") or digest
    return digest


def run_build(params, check_mode, google_token):
    if "@" in params["name"] or ":" in params["name"].rsplit("/", 1)[-1]:
        raise RegistryError(f"name {params['name']!r} must be REGISTRY/REPOSITORY without a tag or digest — "
                            "give the tag in 'tag'")
    try:
        ref = parse_reference(f"{params['name']}:{params['tag']}", "name/tag")
    except InvalidReference as exc:
        raise RegistryError(str(exc)) from exc
    context = params["path"]
    dockerfile = params["dockerfile"]
    if not os.path.isdir(context):
        raise RegistryError(f"path {context!r} is not a directory — point it at the build context "
                            "(for example a checkout of triton-inference-server/fil_backend)")
    if not os.path.isfile(os.path.join(context, dockerfile)):
        raise RegistryError(f"dockerfile {dockerfile!r} does not exist in path {context!r} — "
                            "give its path relative to the build context")

    engine = connect(params["docker_host"], params["build_timeout"])
    image_tag = f"{ref.name}:{ref.tag}"
    before = _local_image(engine, image_tag)
    client = make_client(params, "destination", ref, google_token, prefix="registry") if params["push"] else None
    remote = _Remote(client, ref)
    remote_digest = remote.digest
    result = {"image": image_tag, "repository": ref.name, "tag": ref.tag, "pushed": False,
              "previous_image_id": before.id if before else None, "previous_digest": remote_digest}
    if check_mode:
        up_to_date = before is not None and (not params["push"] or remote.holds(before))
        result.update(changed=not up_to_date, image_id=before.id if before else None,
                      digest=remote_digest if up_to_date else None)
        return _finish(result, ref)

    try:
        image, _logs = engine.images.build(
            path=context, dockerfile=dockerfile, tag=image_tag, buildargs=params.get("build_args") or None,
            target=params.get("target"), platform=params.get("platform"), pull=params["pull"],
            nocache=params["nocache"], rm=True)
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", "")) for chunk in list(exc.build_log)[-20:]
                       if "level=debug" not in str(chunk.get("stream", "")))
        raise RegistryError(f"docker build of {context} ({dockerfile}) failed: {exc.msg.strip()} — fix the "
                            f"Dockerfile or build_args; the build's last lines:\n{tail}") from exc
    except docker.errors.APIError as exc:
        raise RegistryError(f"the Docker daemon at docker_host={params['docker_host']} refused the build: {exc}") from exc
    result["image_id"] = image.id
    built = before is None or image.id != before.id
    digest = remote_digest
    if params["push"]:
        image.reload()
        if not remote.holds(image):
            digest = _push(engine, ref, client.credentials) or client.manifest_digest(ref.repository, ref.tag)
            result["pushed"] = True
    result.update(changed=built or result["pushed"], digest=digest)
    return _finish(result, ref)


def _finish(result, ref):
    digest = result.get("digest")
    result["ref"] = ref.with_digest(digest) if digest else None
    result["diff"] = {"before": {"image_id": result["previous_image_id"], "digest": result["previous_digest"]},
                      "after": {"image_id": result.get("image_id"), "digest": digest}}
    return result
