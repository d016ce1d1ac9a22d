#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_image_build
short_description: Build a container image with a Docker daemon and push it to a registry
version_added: 0.2.0
description:
  - Builds an image from a context folder and Dockerfile through the Docker SDK (the C(docker)
    Python package) on the daemon at O(docker_host), tags it O(name):O(tag) and pushes it.
  - Meant for building the Triton FIL image from a checkout of C(triton-inference-server/fil_backend);
    where no Docker daemon exists, mirror the prebuilt NGC image with
    M(rapids.triton_fil.container_image_mirror) instead (role C(gcr_image), C(gcr_image_mode=mirror)).
  - Idempotent by image id and remote digest. The daemon's build cache gives the same image id for
    an unchanged context. The push is skipped when the registry tag already names a digest that
    the local image was pushed as.
  - Google registries (C(gcr.io), C(*.gcr.io), C(*-docker.pkg.dev)) are pushed to as
    C(oauth2accesstoken) with a google-auth access token from the O(auth_kind) options unless
    O(registry_username) is given.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
options:
  path:
    description: The build context folder.
    type: path
    required: true
  dockerfile:
    description: Path of the Dockerfile, relative to O(path).
    type: str
    default: Dockerfile
  build_args:
    description: Build arguments (C(--build-arg)).
    type: dict
    aliases: [buildargs]
  target:
    description: Build stage to stop at (C(--target)).
    type: str
  platform:
    description: Platform to build for, for example V(linux/amd64).
    type: str
  name:
    description: Image repository, C(REGISTRY/REPOSITORY) without a tag.
    type: str
    required: true
  tag:
    description: Image tag.
    type: str
    default: latest
  push:
    description: Push the image to the registry after building it.
    type: bool
    default: true
  pull:
    description: Pull newer base images while building.
    type: bool
    default: false
  nocache:
    description: Build without the daemon's layer cache.
    type: bool
    default: false
  docker_host:
    description:
      - The Docker daemon to use, for example V(unix:///var/run/docker.sock), V(tcp://HOST:2376) or
        V(ssh://USER@HOST).
      - Falls back to E(DOCKER_HOST).
    type: str
    default: unix:///var/run/docker.sock
  build_timeout:
    description: Seconds to wait for one call to the Docker daemon (the build included).
    type: int
    default: 3600
  registry_username:
    description: User for a registry that is not a Google registry.
    type: str
  registry_password:
    description: Password or token for O(registry_username).
    type: str
  insecure_registries:
    description: Registry hosts that may be reached over plain HTTP (to read the remote digest).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: partial
    details:
      - Nothing is built; the prediction is C(changed) unless the local image exists and was pushed as
        the digest the registry tag names.
notes:
  - Without a reachable daemon the module fails with a message naming O(docker_host) and the mirror mode.
requirements:
  - docker (the Docker SDK for Python)
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Build the FIL backend image and push it to Artifact Registry
  rapids.triton_fil.container_image_build:
    path: /src/fil_backend
    dockerfile: ops/Dockerfile
    build_args:
      TRITON_VERSION: "24.10"
    name: us-central1-docker.pkg.dev/my-project/triton/triton_fil
    tag: "24.10"
    auth_kind: application
  register: built

- name: Deploy it by digest
  ansible.builtin.debug:
    msg: "{{ built.ref }}"
"""

RETURN = r"""
image:
  description: The local image name, C(REPOSITORY:TAG).
  returned: success
  type: str
repository:
  description: C(REGISTRY/REPOSITORY).
  returned: success
  type: str
tag:
  description: The tag.
  returned: success
  type: str
image_id:
  description: Id of the built image (in check mode, of the existing local image or null).
  returned: success
  type: str
digest:
  description: Digest of the pushed manifest (null when not pushed and unknown).
  returned: success
  type: str
ref:
  description: C(REPOSITORY@DIGEST), the reference to deploy (null without a digest).
  returned: success
  type: str
pushed:
  description: Whether the image was pushed in this run.
  returned: success
  type: bool
previous_image_id:
  description: Id of the local image the tag named before the build.
  returned: success
  type: str
previous_digest:
  description: Digest the registry tag named before the run.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.spec import gcp_argument_spec
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.build import (
    DEFAULT_DOCKER_HOST, DOCKER_IMPORT_ERROR, HAS_DOCKER, run_build,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import google_token_source
from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(
        path=dict(type="path", required=True),
        dockerfile=dict(type="str", default="Dockerfile"),
        build_args=dict(type="dict", aliases=["buildargs"]),
        target=dict(type="str"),
        platform=dict(type="str"),
        name=dict(type="str", required=True),
        tag=dict(type="str", default="latest"),
        push=dict(type="bool", default=True),
        pull=dict(type="bool", default=False),
        nocache=dict(type="bool", default=False),
        docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST, fallback=(env_fallback, ["DOCKER_HOST"])),
        build_timeout=dict(type="int", default=3600),
        registry_username=dict(type="str"),
        registry_password=dict(type="str", no_log=True),
        insecure_registries=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_together=[("registry_username", "registry_password")])
    run_module(module, lambda: run_build(
        module.params, module.check_mode, google_token_source(module.params, "registry_username/registry_password")),
        requires=[(HAS_DOCKER, "docker", DOCKER_IMPORT_ERROR)])


if __name__ == "__main__":
    main()
