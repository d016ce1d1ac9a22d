#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment_preflight
short_description: Check a deployment's variables and fail once with every problem listed
version_added: 0.1.0
description:
  - Runs the collection's preflight rules over the given variables (project and location formats,
    bucket and prefix syntax, autoscaling C(*_min_*) <= C(*_max_*), GPU accelerator types and counts,
    image references, credential settings, verify settings) and, when O(model_repository) is given,
    validates the model repository with Triton's ModelConfig protobuf.
  - With O(check_credentials=true), also obtains an access token with the given GCP options, so
    missing or expired credentials are reported before anything is created.
  - Fails once, listing all problems, each naming the variable and the fix. Never writes anything.
extends_documentation_fragment:
  - rapids.triton_fil.gcp
options:
  settings:
    description: Variable name to value, as the roles receive them.
    type: dict
    required: true
  model_repository:
    description:
      - Local model repository folder to validate too, for the FIL release of C(gcs_models_fil_release) in
        O(settings), else of the tag of C(gcr_image_source) (see M(rapids.triton_fil.triton_model_repository)).
    type: path
  check_credentials:
    description: Obtain an access token with O(auth_kind) and friends; a failure becomes a problem.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check every variable before anything is created
  rapids.triton_fil.deployment_preflight:
    settings:
      gcp_project: "{{ gcp_project }}"
      gcp_zone: "{{ gcp_zone }}"
      gcs_models_bucket: "{{ gcs_models_bucket }}"
    model_repository: "{{ gcs_models_src }}"
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
models:
  description:
    - The valid model configurations of O(model_repository), as M(rapids.triton_fil.triton_model_repository)
      returns them (the gcs_models role reuses them instead of validating the same folder again).
  returned: when O(model_repository) is given
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import (
    GcpError, GcpSession, gcp_argument_spec,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.rules import check
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import releases
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    ModelRepositoryError,
    validate_repository,
)


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(settings=dict(type="dict", required=True), model_repository=dict(type="path"),
                         check_credentials=dict(type="bool", default=False))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    settings = module.params["settings"]
    problems = check(settings)
    result = {"changed": False}
    if module.params["model_repository"]:
        try:
            # The models are checked for the FIL release the deployment's image serves.
            release = releases.resolve(release=settings.get("gcs_models_fil_release") or None,
                                       image=settings.get("gcr_image_source"))[0]
            report = validate_repository(module.params["model_repository"], release=release)
        except releases.ReleaseError as exc:
            report = {"problems": [f"gcs_models_fil_release: {exc}"]}
        except ModelRepositoryError as exc:
            report = {"problems": [str(exc)]}
        problems += [f"gcs_models_src: {p}" for p in report["problems"]]
        result["models"] = report.get("models", [])
    if module.params["check_credentials"] and module.params["auth_kind"] != "anonymous":
        try:
            GcpSession(module.params).token()
        except GcpError as exc:
            problems.append(f"gcp_auth_kind: no access token with auth_kind={module.params['auth_kind']}: {exc}")
    result.update(problems=problems, checked=sorted(settings))
    if problems:
        module.fail_json(msg=f"deployment_preflight: {len(problems)} problem(s) — nothing was changed:\n- "
                             + "\n- ".join(problems), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
