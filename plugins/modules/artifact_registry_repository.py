#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: artifact_registry_repository
short_description: Create, update or delete an Artifact Registry repository
version_added: 0.2.0
description:
  - Makes an Artifact Registry repository (REST API v1, C(projects.locations.repositories)) match
    the requested settings with a google-auth session, changing only what differs (description,
    labels, immutable tags).
  - A repository's format cannot change; asking for another format fails with the fix.
  - O(state=absent) deletes an empty repository only; one that holds images is kept and the module
    fails unless O(force=true), since deleting a repository deletes every image in it.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
options:
  name:
    description: The repository id, for example V(triton) (images are then C(LOCATION-docker.pkg.dev/PROJECT/triton/IMAGE)).
    type: str
    required: true
  location:
    description: Region (V(us-central1)) or multi-region (V(us)) of the repository.
    type: str
    required: true
  format:
    description: Repository format; only checked against an existing repository, never changed.
    type: str
    choices: [DOCKER, MAVEN, NPM, PYTHON, APT, YUM, GO, KFP, GENERIC]
    default: DOCKER
  description:
    description: Human-readable description.
    type: str
  labels:
    description: Labels to set; the whole label set is managed when given.
    type: dict
  immutable_tags:
    description: With O(format=DOCKER), forbid moving or deleting tags once created.
    type: bool
  state:
    description: Whether the repository should exist.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: With O(state=absent), delete a repository that still holds images.
    type: bool
    default: false
  operation_timeout:
    description: Seconds to wait for a create or delete operation to finish.
    type: int
    default: 300
  api_endpoint:
    description:
      - Base URL of the Artifact Registry API, for tests against a simulator.
      - Falls back to E(GCP_ARTIFACT_REGISTRY_ENDPOINT).
    type: str
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Docker repository for the Triton image
  rapids.triton_fil.artifact_registry_repository:
    name: triton
    location: us-central1
    project: my-project
    description: Triton Inference Server images
    labels:
      app: triton-fil

- name: Remove it with its images (explicitly asked)
  rapids.triton_fil.artifact_registry_repository:
    name: triton
    location: us-central1
    project: my-project
    state: absent
    force: true
"""

RETURN = r"""
name:
  description: Full resource name, C(projects/PROJECT/locations/LOCATION/repositories/NAME).
  returned: always
  type: str
registry_uri:
  description: Where its images live, for example C(us-central1-docker.pkg.dev/my-project/triton).
  returned: always
  type: str
repository:
  description: The repository resource after the run (before it, in check mode).
  returned: when the repository exists
  type: dict
changes:
  description: The repository's options whose value differed from Artifact Registry's (O(description), O(labels), ...).
  returned: always
  type: list
  elements: dict
  sample: [{field: labels, before: {}, after: {app: triton-fil}}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.artifact_registry.repository import (
    FORMATS, ArtifactRegistryClient, check_names, endpoint_spec, run_repository,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.module import run_gcp_module
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import gcp_argument_spec


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        location=dict(type="str", required=True),
        format=dict(type="str", default="DOCKER", choices=FORMATS),
        description=dict(type="str"),
        labels=dict(type="dict"),
        immutable_tags=dict(type="bool"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        force=dict(type="bool", default=False),
        operation_timeout=dict(type="int", default=300),
        api_endpoint=endpoint_spec(),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_gcp_module(module, lambda session, params: ArtifactRegistryClient(
        session, params["api_endpoint"], operation_timeout=params["operation_timeout"]),
        run_repository, validate=check_names)


if __name__ == "__main__":
    main()
