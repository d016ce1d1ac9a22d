# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Image references as Docker writes them: [registry/]repository[:tag][@sha256:digest].

Follows the distribution reference grammar: the first path component is a registry when it holds
a '.' or a ':' or is 'localhost'; otherwise the image is on Docker Hub (docker.io, served by
registry-1.docker.io) and a one-component name gets the 'library/' prefix.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                   r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")


class InvalidReference(TritonFilError, ValueError):
    """An image reference that cannot be parsed; the message says what is wrong."""


class Reference:
    """A parsed image reference. ``registry`` is the name as written (docker.io for Hub)."""

    __slots__ = ("registry", "repository", "tag", "digest")

    def __init__(self, registry, repository, tag=None, digest=None):
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest

    @property
    def name(self):
        """registry/repository, the form that a Kubernetes image field and Helm values take."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self):
        """The host:port that serves the distribution API."""
        return api_host(self.registry)

    @property
    def ref(self):
        """The tag or digest to ask the registry for (digest wins)."""
        return self.digest or self.tag

    def with_digest(self, digest):
        return f"{self.name}@{digest}"

    def __str__(self):
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __repr__(self):
        return f"Reference({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))


def api_host(registry):
    return DOCKER_HUB_API if registry in (DOCKER_HUB, "index.docker.io") else registry


def host_without_port(host):
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host):
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port)."""
    bare = host_without_port(host)
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def is_google_registry(host):
    """gcr.io and its regional hosts, and Artifact Registry's REGION-docker.pkg.dev."""
    bare = host_without_port(host).lower()
    return bare == "gcr.io" or bare.endswith(".gcr.io") or bare.endswith("-docker.pkg.dev")


def parse_reference(text, option="image"):
    """Parse an image reference; raises InvalidReference naming ``option`` and the fix."""
    original = text
    text = (text or "").strip()
    if not text:
        raise InvalidReference(f"{option} is empty — give an image such as 'nvcr.io/nvidia/tritonserver:24.10-py3'")
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise InvalidReference(
            f"{option} {original!r} must not carry a URL scheme — drop '{scheme}://' (write registry/repository:tag)")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(
                f"{option} {original!r} has an invalid digest {digest!r} — expected sha256: followed by "
                "64 lowercase hex digits")
    tag = None
    last_slash = text.rfind("/")
    last_colon = text.rfind(":")
    if last_colon > last_slash:
        text, tag = text[:last_colon], text[last_colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(
                f"{option} {original!r} has an invalid tag {tag!r} — up to 128 letters, digits, "
                "'_', '.' or '-', not starting with '.' or '-'")
    parts = text.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, parts[1:]
        if not _HOST.match(registry):
            raise InvalidReference(f"{option} {original!r} has an invalid registry host {registry!r}")
    else:
        registry, path = DOCKER_HUB, parts
    if registry == "index.docker.io":
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library"] + path
    for component in path:
        if not _COMPONENT.match(component):
            hint = " (repository names are lowercase)" if component.lower() != component else ""
            raise InvalidReference(f"{option} {original!r} has an invalid repository component {component!r}{hint}")
    return Reference(registry, "/".join(path), tag, digest)
