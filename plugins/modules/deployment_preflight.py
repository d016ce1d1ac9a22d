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
  - Fails once, listing all problems, each naming the variable and the fix. Never writes anything.
options:
  settings:
    description: Variable name to value, as the roles receive them.
    type: dict
    required: true
  model_repository:
    description: Local model repository folder to validate too.
    type: path
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
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.rules import check
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    ModelRepositoryError,
    validate_repository,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(settings=dict(type="dict", required=True), model_repository=dict(type="path")),
        supports_check_mode=True,
    )
    settings = module.params["settings"]
    problems = check(settings)
    if module.params["model_repository"]:
        try:
            report = validate_repository(module.params["model_repository"])
        except ModelRepositoryError as exc:
            report = {"problems": [str(exc)]}
        problems += [f"gcs_models_src: {p}" for p in report["problems"]]
    result = {"changed": False, "problems": problems, "checked": sorted(settings)}
    if problems:
        module.fail_json(msg=f"deployment_preflight: {len(problems)} problem(s) — nothing was changed:\n- "
                             + "\n- ".join(problems), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
