#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_image_mirror
short_description: Copy a container image from one registry to another without a Docker daemon
version_added: 0.2.0
description:
  - Copies an image (a single manifest, or a manifest list / OCI index with all or one of its
    platforms) between registries that speak the OCI distribution API v2, such as C(nvcr.io),
    Docker Hub, Artifact Registry (C(REGION-docker.pkg.dev)), C(gcr.io) or a local registry.
  - Manifests are copied byte for byte, so the destination digest is the source digest and the
    returned RV(ref) (C(repository@sha256:...)) pins exactly what was pushed.
  - Nothing is sent when the destination tag already names the same digest (C(changed=false)).
    Otherwise only the blobs the destination lacks are sent. A blob the destination registry already
    holds in another repository is mounted from there instead of sent (a cross-repository mount) - from
    the source repository when both are on one registry, from the repositories in O(mount_from),
    and from those where earlier copies on this host left it (O(blob_cache)); each candidate is
    confirmed with a HEAD request first.
  - Each blob is streamed from the source to the destination (download and upload overlap, memory
    stays bounded) and committed only when its bytes hash to its digest; the largest blobs start first.
  - Plain HTTP is tried first for loopback registries and those in O(insecure_registries) (HTTPS when
    the port speaks TLS); google-auth is loaded only when a Google registry is involved.
  - Authentication answers the registry's own challenge (Basic, or Bearer tokens from its token
    service). Google registries (C(gcr.io), C(*.gcr.io), C(*-docker.pkg.dev)) get the user
    C(oauth2accesstoken) and a google-auth access token from the O(auth_kind) options, unless a
    username is given for that side.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
options:
  source:
    description:
      - The image to copy, C([REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]); a bare name is on Docker Hub.
    type: str
    required: true
  destination:
    description:
      - Where to copy it, C(REGISTRY/REPOSITORY[:TAG]). Without a tag the source's tag is used; when
        the source is given by digest only, the image is pushed by digest without a tag.
    type: str
    required: true
  platform:
    description:
      - V(all) copies an index with every platform it lists (the digest stays the index's).
      - C(OS/ARCH[/VARIANT]), for example V(linux/amd64), copies only that platform's image manifest;
        the returned digest is then that manifest's.
    type: str
    default: all
  source_username:
    description: User for the source registry (for C(nvcr.io) with an NGC API key, V($oauthtoken)).
    type: str
  source_password:
    description: Password or token for O(source_username).
    type: str
  destination_username:
    description:
      - User for the destination registry. Without it a Google registry is accessed with the
        O(auth_kind) credentials and any other registry anonymously.
    type: str
  destination_password:
    description: Password or token for O(destination_username).
    type: str
  insecure_registries:
    description:
      - Registry hosts (C(host:port) as written in the references) that may be reached over plain
        HTTP or HTTPS without certificate verification. Loopback registries may always use HTTP.
    type: list
    elements: str
    default: []
  chunk_size:
    description:
      - V(0) sends each blob in one streamed upload request, as C(docker push) and C(skopeo) do.
      - A positive value (at least 1024) splits blobs larger than this many bytes into upload requests
        of this size (each still streamed), for registries or proxies that limit the size of a request.
    type: int
    default: 0
  mount_from:
    description:
      - Repositories of the destination registry (without the registry host) that may already hold the
        image's blobs, for example an earlier mirror of the same image; a blob found there (HEAD) is
        mounted instead of sent. The credentials need pull access to them.
    type: list
    elements: str
    default: []
  blob_cache:
    description:
      - A JSON file on the managed host that records which repositories held which blobs after each
        copy (as containers/image's blob info cache does for skopeo and podman), so that a later copy
        into another repository of the same registry mounts them instead of sending them.
      - The entries are only hints, confirmed with a HEAD request before a mount. An empty string keeps
        no cache. Not written in check mode. The environment variable E(TRITON_FIL_BLOB_CACHE) sets it too.
    type: str
    default: ~/.cache/rapids.triton_fil/blob-locations.json
  parallelism:
    description: Blobs checked and copied at the same time.
    type: int
    default: 4
notes:
  - Check mode asks the destination which blobs it has and reports RV(blobs_planned) and
    RV(bytes_planned) without sending anything.
  - Docker schema 1 manifests are refused; they cannot be copied without changing their digest.
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Mirror the NGC Triton image (amd64) into Artifact Registry
  rapids.triton_fil.container_image_mirror:
    source: nvcr.io/nvidia/tritonserver:24.10-py3
    destination: us-central1-docker.pkg.dev/my-project/triton/triton_fil:24.10-py3
    platform: linux/amd64
    auth_kind: application
  register: mirrored

- name: Copy every platform between two registries with passwords
  rapids.triton_fil.container_image_mirror:
    source: registry.example.com/team/app:1.2
    destination: mirror.example.com/team/app
    source_username: reader
    source_password: "{{ vault_source_password }}"
    destination_username: pusher
    destination_password: "{{ vault_destination_password }}"

- name: A second repository of the same registry mounts the blobs of the first instead of uploading them
  rapids.triton_fil.container_image_mirror:
    source: nvcr.io/nvidia/tritonserver:24.10-py3
    destination: us-central1-docker.pkg.dev/my-project/triton-staging/triton_fil:24.10-py3
    platform: linux/amd64
    mount_from: [my-project/triton/triton_fil]

- name: Deploy what was pushed, by digest
  ansible.builtin.debug:
    msg: "image: {{ mirrored.ref }}"
"""

RETURN = r"""
digest:
  description: Digest of the manifest at the destination (the index, or the chosen platform's manifest).
  returned: success
  type: str
  sample: sha256:7c3c7f9e0e3b6a1f1f5f7f2b0a9c1d1e3b0a4c2d5e6f708192a3b4c5d6e7f809
ref:
  description: C(REPOSITORY@DIGEST), the reference to deploy.
  returned: success
  type: str
  sample: us-central1-docker.pkg.dev/my-project/triton/triton_fil@sha256:7c3c...
repository:
  description: The destination C(REGISTRY/REPOSITORY).
  returned: success
  type: str
tag:
  description: The destination tag (null when pushed by digest only).
  returned: success
  type: str
media_type:
  description: Media type of the pushed manifest.
  returned: success
  type: str
source_digest:
  description: Digest the source reference resolved to (the index digest when one platform was chosen).
  returned: success
  type: str
previous_digest:
  description: Digest the destination tag named before the run (null when it did not exist).
  returned: success
  type: str
platforms:
  description: Platforms copied (C(os/architecture[/variant])); empty for a single image copied with O(platform=all).
  returned: success
  type: list
  elements: str
manifests_copied:
  description: Manifests pushed (index and image manifests).
  returned: success
  type: int
blobs_planned:
  description: Blobs the destination lacked (what is or, in check mode, would be sent or mounted).
  returned: success
  type: int
bytes_planned:
  description: Size of the blobs in RV(blobs_planned).
  returned: success
  type: int
blobs_copied:
  description: Blobs uploaded (0 in check mode).
  returned: success
  type: int
blobs_mounted:
  description: Blobs mounted from another repository of the destination registry instead of uploaded.
  returned: success
  type: int
blobs_skipped:
  description:
    - Blobs the destination already had. 0 when the tag already named the digest, since nothing
      else was inspected then.
  returned: success
  type: int
bytes_copied:
  description: Bytes of blob data uploaded.
  returned: success
  type: int
requests:
  description: Number of HTTP requests sent to each registry (and the writes to the destination).
  returned: success
  type: dict
  sample: {source: 3, destination: 2, destination_writes: 0}
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.spec import gcp_argument_spec
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import (
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR, google_token_source,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.mirror import (
    DEFAULT_CHUNK_SIZE, DEFAULT_BLOB_CACHE, check_chunk_size, run_mirror,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(
        source=dict(type="str", required=True),
        destination=dict(type="str", required=True),
        platform=dict(type="str", default="all"),
        source_username=dict(type="str"),
        source_password=dict(type="str", no_log=True),
        destination_username=dict(type="str"),
        destination_password=dict(type="str", no_log=True),
        insecure_registries=dict(type="list", elements="str", default=[]),
        chunk_size=dict(type="int", default=DEFAULT_CHUNK_SIZE),
        parallelism=dict(type="int", default=4),
        mount_from=dict(type="list", elements="str", default=[]),
        blob_cache=dict(type="str", default=DEFAULT_BLOB_CACHE, fallback=(env_fallback, ["TRITON_FIL_BLOB_CACHE"])),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_together=[("source_username", "source_password"),
                           ("destination_username", "destination_password")],
    )
    run_module(module, lambda: run_mirror(
        module.params, module.check_mode, google_token_source(module.params, "the registry username/password")),
        requires=[(HAS_REQUESTS, "requests", REQUESTS_IMPORT_ERROR)], validate=check_chunk_size)


if __name__ == "__main__":
    main()
