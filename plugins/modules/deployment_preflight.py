#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment_preflight
short_description: Check a deployment's settings before anything is written, and fail once with every problem
version_added: 0.1.0
description:
  - Its action plugin (on the controller) decides from O(target) which roles the run has (gke - every role;
    kubernetes - the Kubernetes roles, gcs_models, verify and gcr_image when enabled; local - gcs_models, verify
    and gcr_image when enabled), resolves every variable of those roles' C(meta/argument_specs.yml) as the role
    would see it (the host's variables over the role's defaults), validates each role's argument spec (types,
    choices, required), and runs the collection's rules over the valid values (GKE and Kubernetes names, GPU type
    versus machine type and count, boot disk, CIDRs, GPU capacity, files that must exist, options that only act
    together, tritonserver flags, image references, credentials). docs/roles.md lists the rules of each variable.
  - Values that depend on a fact a role of the run sets later (the image digest, the kubeconfig of a new cluster,
    the endpoint) are not checked.
  - The module then validates the model repository with Triton's ModelConfig protobuf (O(model_repository)),
    obtains an access token (O(check_credentials)) and, with O(live_checks), asks Google read-only questions - the
    GPU type in every node zone (compute acceleratorTypes.list), the regional GPU quota (compute regions.get),
    the APIs the run calls (serviceusage services.list), whether the bucket name belongs to someone else
    (storage buckets.get).
  - Fails once, listing all problems, each naming the variable and the fix. Never writes anything.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
options:
  settings:
    description:
      - Variable name to value. By default the action plugin collects them from the host's variables and the
        roles' defaults; values given here override those.
    type: dict
    default: {}
  target:
    description: Deployment target; default C(triton_fil_target), else V(gke).
    type: str
    choices: [gke, kubernetes, local]
  roles:
    description: Roles whose argument specs and rules apply; default the roles O(target) runs.
    type: list
    elements: str
  model_repository:
    description:
      - Local model repository folder to validate too, for the FIL release of C(gcs_models_fil_release) in
        O(settings), else of the tag of C(gcr_image_source) (see M(rapids.triton_fil.triton_model_repository)).
    type: path
  check_credentials:
    description: Obtain an access token with O(auth_kind) and friends; a failure becomes a problem.
    type: bool
    default: false
  live_checks:
    description: Ask Google the read-only questions above (needs working credentials; skipped otherwise).
    type: bool
    default: false
  compute_endpoint:
    description: Compute Engine API root (tests point it at a simulator).
    type: str
    default: https://compute.googleapis.com
  serviceusage_endpoint:
    description: Service Usage API root.
    type: str
    default: https://serviceusage.googleapis.com
  storage_endpoint:
    description: Cloud Storage JSON API root; default C(gcp_storage_endpoint), else Google's.
    type: str
  container_endpoint:
    description: Container API root (to tell whether the GPU pool exists); default C(gke_cluster_api_endpoint).
    type: str
  skip:
    description: Variables that already have a problem (set by the action plugin); live checks leave them out.
    type: list
    elements: str
    default: []
attributes:
  diff_mode:
    support: none
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check every setting of the run's roles, the model repository, credentials and quotas before any write
  rapids.triton_fil.deployment_preflight:
    model_repository: "{{ gcs_models_src }}"
    check_credentials: true
    live_checks: true
    project: "{{ gcp_project }}"
    auth_kind: application
"""

RETURN = r"""
problems:
  description: Every problem found; each names the variable, what is wrong and how to fix it.
  returned: always
  type: list
  elements: str
checked:
  description: The variables that were checked.
  returned: always
  type: list
  elements: str
roles:
  description: The roles whose argument specs and rules were applied.
  returned: always
  type: list
  elements: str
later:
  description: Variables not checked because their values come from a fact a role of the run sets later.
  returned: always
  type: list
  elements: str
live:
  description: What the live checks found (enabled APIs, accelerator zones, GPU quota, bucket).
  returned: when O(live_checks=true)
  type: dict
models:
  description:
    - The valid model configurations of O(model_repository), as M(rapids.triton_fil.triton_model_repository)
      returns them (the gcs_models role reuses them instead of validating the same folder again).
  returned: when O(model_repository) is given
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import gcp_argument_spec
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.live import (
    COMPUTE_ENDPOINT, SERVICEUSAGE_ENDPOINT,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.run import run_preflight
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.targets import TARGETS
from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(
        settings=dict(type="dict", default={}), target=dict(type="str", choices=list(TARGETS)),
        roles=dict(type="list", elements="str"), model_repository=dict(type="path"),
        check_credentials=dict(type="bool", default=False), live_checks=dict(type="bool", default=False),
        compute_endpoint=dict(type="str", default=COMPUTE_ENDPOINT),
        serviceusage_endpoint=dict(type="str", default=SERVICEUSAGE_ENDPOINT),
        storage_endpoint=dict(type="str"), container_endpoint=dict(type="str"),
        skip=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: run_preflight(module.params))


if __name__ == "__main__":
    main()
