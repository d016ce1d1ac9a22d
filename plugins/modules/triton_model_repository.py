#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: triton_model_repository
short_description: Validate a local Triton model repository before it is uploaded
version_added: 0.1.0
description:
  - Parses every C(config.pbtxt) (and every C(configs/<name>.pbtxt) variant) with Triton's own
    C(ModelConfig) protobuf, so a field Triton would reject fails here, naming the file, line and field.
  - Checks that each model has a numbered version folder and, for models whose C(backend) is
    C(fil), the FIL backend's rules - C(model_type) and the model file it needs in every version
    folder (C(xgboost.model), C(xgboost.json), C(xgboost.ubj), C(model.txt), C(checkpoint.tl)),
    the values of C(output_class), C(predict_proba), C(threshold), C(storage_type) and the other FIL
    parameters, one FP32 input C(input__0) and output C(output__0), and, where the model file is
    readable (XGBoost JSON, LightGBM text), that the input C(dims) equal the model's feature count
    and the output C(dims) its number of classes.
  - Every model file must be readable, non-empty, not only NUL bytes, and parse as its C(model_type).
    XGBoost JSON is parsed whole; UBJSON, the legacy XGBoost binary format, LightGBM text and treelite
    checkpoints get the header checks of the treelite loaders the FIL backend uses (for example a
    UBJSON file under C(model_type=xgboost) is named, with the C(model_type) to set).
  - A configuration file must be UTF-8 and at most 1 MiB (Triton configurations are a few kB); an
    unreadable file or folder is a problem naming it, not a failure of the module. Unknown FIL
    parameters give one advisory per configuration file, however many there are.
  - Read-only; never reports a change. Returns what each configuration declares, in the shape
    M(rapids.triton_fil.triton_verify) takes as O(rapids.triton_fil.triton_verify#module:expected_config).
options:
  path:
    description: The model repository folder (one sub-folder per model).
    type: path
    required: true
  models:
    description: Validate only these model folders; default is every folder.
    type: list
    elements: str
    default: []
  fail_on_warnings:
    description: Also fail on warnings (parameters the FIL backend does not know, for example misspelt keys).
    type: bool
    default: false
requirements:
  - tritonclient[grpc] (brings protobuf)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
    details: Nothing is ever changed.
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Validate the model repository
  rapids.triton_fil.triton_model_repository:
    path: "{{ playbook_dir }}/../model_repository"
  register: repo

- name: Compare the served metadata with what the configuration declares
  rapids.triton_fil.triton_verify:
    url: localhost:8000
    model: fil
    expected_config: "{{ repo.models | selectattr('name', 'equalto', 'fil') | first }}"
"""

RETURN = r"""
models:
  description: One entry per valid model configuration.
  returned: always
  type: list
  elements: dict
  sample:
    - name: fil
      backend: fil
      max_batch_size: 32768
      versions: [1]
      inputs: [{name: input__0, data_type: TYPE_FP32, dims: [32]}]
      outputs: [{name: output__0, data_type: TYPE_FP32, dims: [2]}]
      instance_kinds: [KIND_GPU]
      parameters: {model_type: xgboost_json, output_class: "true", predict_proba: "true"}
      model_type: xgboost_json
      model_file: xgboost.json
      num_features: 32
      num_classes: 2
      config_variants: [configs/cpu.pbtxt]
problems:
  description: Everything that would keep Triton or the FIL backend from loading a model; each names the file (and line), the field, and the fix.
  returned: always
  type: list
  elements: str
advisories:
  description: Findings that do not stop loading (for example an unknown FIL parameter).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    HAS_MODEL_CONFIG,
    MODEL_CONFIG_IMPORT_ERROR,
    ModelRepositoryError,
    validate_repository,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            models=dict(type="list", elements="str", default=[]),
            fail_on_warnings=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if not HAS_MODEL_CONFIG:
        module.fail_json(msg=missing_required_lib("tritonclient[grpc]"), exception=str(MODEL_CONFIG_IMPORT_ERROR))
    try:
        report = validate_repository(module.params["path"], module.params["models"])
    except ModelRepositoryError as exc:
        module.fail_json(msg=str(exc), models=[], problems=[str(exc)], advisories=[])
    findings = report["problems"] + (report["warnings"] if module.params["fail_on_warnings"] else [])
    for warning in report["warnings"]:
        module.warn(warning)
    result = dict(changed=False, models=report["models"], problems=report["problems"], advisories=report["warnings"])
    if findings:
        module.fail_json(msg=f"model repository {module.params['path']}: {len(findings)} problem(s); "
                             "nothing was uploaded:\n- " + "\n- ".join(findings), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
