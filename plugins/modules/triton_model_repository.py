#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: triton_model_repository
short_description: Validate a local Triton model repository against the Triton/FIL release it will be served by
version_added: 0.1.0
description:
  - Parses every C(config.pbtxt) (and every C(configs/<name>.pbtxt) variant) with Triton's own
    C(ModelConfig) protobuf, so a field Triton would reject fails here, naming the file, line and field.
  - Checks that each model has a numbered version folder and, for models whose C(backend) is
    C(fil), the FIL backend's rules - C(model_type) and the model file it needs in every version
    folder (C(xgboost.model), C(xgboost.json), C(xgboost.ubj), C(model.txt), C(checkpoint.tl)),
    the values of C(output_class), C(predict_proba), C(threshold), C(storage_type) and the other FIL
    parameters, one FP32 input C(input__0) and output C(output__0), and, where the model file gives
    them (XGBoost JSON and UBJSON, LightGBM text, Treelite 4 checkpoints), that the input C(dims) equal
    the model's feature count and the output C(dims) its number of classes.
  - The FIL rules are those of the release the deployment serves, from the collection's release matrix
    (NGC tag, Triton version, FIL parameter set, the Treelite that loads the model files; every fact with the
    commit of the server and fil_backend release branch it was read from, see docs/fil_releases.md).
    The release is O(release), or the tag of O(image), or the collection's default release.
  - Parameters the release no longer reads (for example C(output_class), C(algo), C(threads_per_tree),
    C(storage_type) from 25.09 on) and parameters it does not read yet (C(is_classifier) before 25.09) are
    problems naming the replacement; parameters the release does not know at all give one advisory per
    configuration file, however many there are.
  - Every model file must be readable, non-empty, not only NUL bytes, and parse as its C(model_type).
    XGBoost JSON and UBJSON are decoded whole; the legacy XGBoost binary format, LightGBM text and Treelite
    checkpoints get the header checks of the Treelite loaders the FIL backend uses (for example a UBJSON file
    under C(model_type=xgboost) is named, with the C(model_type) to set). Model files the release's Treelite
    cannot load (XGBoost 3.1+ JSON/UBJSON before 26.01, checkpoints of another Treelite major version than
    the release's, other than 3.9) are problems too.
  - A configuration file must be UTF-8 and at most 1 MiB (Triton configurations are a few kB); an
    unreadable file or folder is a problem naming it, not a failure of the module.
  - With O(migrate=true) the configurations are rewritten to the release's parameter names (text edited in
    place, comments kept); check mode reports the rewrite without writing and C(--diff) shows it.
    Without O(migrate) the module is read-only.
  - Returns what each configuration declares, in the shape
    M(rapids.triton_fil.triton_verify) takes as O(rapids.triton_fil.triton_verify#module:expected_config).
extends_documentation_fragment:
  - rapids.triton_fil.attributes
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
  release:
    description:
      - The NGC release the repository will be served by, for example C(26.06) or C(26.06-py3).
      - Takes precedence over O(image). A release newer than the matrix is validated with the newest
        release's rules and an advisory; an older one is refused.
    type: str
  image:
    description:
      - The Triton image the deployment serves (for example the gcr_image role's C(gcr_image_source));
        its tag selects the release when O(release) is not set.
      - A tag that names no release (C(latest)) validates against the collection's default release, with an advisory.
    type: str
  migrate:
    description:
      - Rewrite every FIL configuration to the parameter names of the release (renamed parameters get their
        new name, removed ones are deleted) before validating.
    type: bool
    default: false
requirements:
  - tritonclient[grpc] (brings protobuf)
attributes:
  diff_mode:
    details: Only O(migrate=true) changes files; the diff shows each rewritten configuration.
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Validate the model repository for the image the deployment mirrors
  rapids.triton_fil.triton_model_repository:
    path: "{{ playbook_dir }}/../model_repository"
    image: nvcr.io/nvidia/tritonserver:26.06-py3
  register: repo

- name: Rewrite 24.10-era configurations (output_class, storage_type, ...) for 26.06
  rapids.triton_fil.triton_model_repository:
    path: "{{ playbook_dir }}/../model_repository"
    release: "26.06"
    migrate: true

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
      parameters: {model_type: xgboost_json, is_classifier: "true", predict_proba: "true", threshold: "0.5"}
      model_type: xgboost_json
      model_file: xgboost.json
      num_features: 32
      num_classes: 2
      task: binary
      config_variants: [configs/cpu.pbtxt]
release:
  description: The release the repository was validated against (from the release matrix).
  returned: always
  type: dict
  sample:
    tag: "26.06"
    image_tag: 26.06-py3
    triton_version: 2.70.0
    parameter_set: "25.09"
    treelite: 4.7.0
    gpu_engine: nvForest
    server_commit: 690f9dd2c16901f1b63d43e73d29f2a623d64c55
    fil_commit: d71f8ef1648027c6e0514d45f1969751684528b5
    covered: true
migrations:
  description: The configurations O(migrate) rewrote (or would rewrite, in check mode), with what changed.
  returned: always
  type: list
  elements: dict
  sample:
    - file: fil/config.pbtxt
      notes: [output_class -> is_classifier, storage_type removed (no longer a FIL parameter)]
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    HAS_MODEL_CONFIG,
    MODEL_CONFIG_IMPORT_ERROR,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.repository import run_repository


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            models=dict(type="list", elements="str", default=[]),
            fail_on_warnings=dict(type="bool", default=False),
            release=dict(type="str"),
            image=dict(type="str"),
            migrate=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda: run_repository(module.params, module.check_mode),
               requires=[(HAS_MODEL_CONFIG, "tritonclient[grpc]", MODEL_CONFIG_IMPORT_ERROR)])


if __name__ == "__main__":
    main()
