#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: fil_model
short_description: Make a Triton FIL model folder, its configuration and a verify reference from a trained forest
version_added: 0.2.0
description:
  - Reads a trained model - XGBoost JSON, UBJSON or legacy binary, a LightGBM text model, a pickled
    scikit-learn forest (RandomForest, ExtraTrees, GradientBoosting, HistGradientBoosting), or a Treelite
    checkpoint - and writes the model folder O(dest)/O(name) that the FIL backend of the target release loads.
  - C(<name>/<version>/<file>) is the model in a format the release loads, from the collection's release matrix
    (docs/fil_releases.md). XGBoost and LightGBM files are copied byte for byte; scikit-learn forests become a
    Treelite checkpoint; with O(output_format=auto) an XGBoost 3.1+ file bound for a release whose Treelite
    cannot parse it (24.10 to 25.12) becomes a checkpoint too, checked against XGBoost's predictions first.
  - C(<name>/config.pbtxt) declares the feature count and, for classifiers, the classes read from the model, in
    the release's parameter names (C(is_classifier) from 25.09, C(output_class) before), C(predict_proba),
    C(threshold), a GPU instance group and dynamic batching. C(<name>/configs/cpu.pbtxt) is the same model on
    CPU instances for the local stack (O(cpu_variant)).
  - The reference file holds input rows (spread over the thresholds the trees split on, or O(reference_data))
    and the framework's own predictions shaped as the FIL backend returns them, in the format
    M(rapids.triton_fil.triton_verify) and the verify role read (C(model_repository/fil_reference.json)).
  - Everything is computed in memory and validated with M(rapids.triton_fil.triton_model_repository)'s rules
    before anything is written; only files whose bytes differ are written. The same model gives the same
    bytes, so a second run reports C(changed=false).
extends_documentation_fragment:
  - rapids.triton_fil.attributes
options:
  model_file:
    description: The trained model file.
    type: path
    required: true
  model_format:
    description:
      - Format of O(model_file); C(auto) tells it from the content and extension (C(.pkl), C(.pickle) and
        C(.joblib) are scikit-learn pickles, C(.tl) Treelite checkpoints, C(.model)/C(.bin) legacy XGBoost).
      - C(sklearn) files are unpickled, which runs code from the file - use your own files only.
    type: str
    choices: [auto, xgboost_json, xgboost_ubj, xgboost, lightgbm, sklearn, treelite_checkpoint]
    default: auto
  dest:
    description: The model repository folder; the model goes to O(dest)/O(name).
    type: path
    required: true
  name:
    description: Model name (folder name and C(name) in config.pbtxt).
    type: str
    required: true
  version:
    description: Version folder to write the model file into.
    type: int
    default: 1
  release:
    description: NGC release the model folder is made for, for example C(26.06). Takes precedence over O(image).
    type: str
  image:
    description:
      - Triton image the deployment serves; its tag selects the release when O(release) is not set. Neither set
        means the collection's default release.
    type: str
  output_format:
    description:
      - C(auto) keeps the native format where the release loads it, else writes a Treelite checkpoint.
      - C(native) fails when the release cannot load the native file; C(treelite_checkpoint) always converts.
    type: str
    choices: [auto, native, treelite_checkpoint]
    default: auto
  predict_proba:
    description: Classifiers return one probability per class (C(true)) or the class index (C(false)).
    type: bool
    default: true
  threshold:
    description: Decision threshold of binary classifiers whose output is a class (FIL's C(threshold)).
    type: float
    default: 0.5
  max_batch_size:
    description: Triton C(max_batch_size).
    type: int
    default: 32768
  instance_count:
    description: Instances per GPU (and on CPU in the variant).
    type: int
    default: 1
  dynamic_batching:
    description: Enable Triton's dynamic batching.
    type: bool
    default: true
  max_queue_delay_microseconds:
    description: Dynamic batching queue delay.
    type: int
    default: 100
  cpu_variant:
    description: Also write C(configs/cpu.pbtxt) (KIND_CPU) for the local stack.
    type: bool
    default: true
  reference_file:
    description: Where to write the reference file; default C(<dest>/<name>_reference.json).
    type: path
  reference_rows:
    description: Number of generated reference rows (ignored with O(reference_data)).
    type: int
    default: 8
  reference_data:
    description: A C(.npy) or C(.csv) file of input rows to use instead of generated ones (rounded to 4 decimals).
    type: path
  atol:
    description: Absolute tolerance written into the reference (the GPU backend computes in float32).
    type: float
    default: 0.0001
  rtol:
    description: Relative tolerance written into the reference.
    type: float
    default: 0.0001
requirements:
  - numpy, treelite (4.x), tritonclient[grpc]
  - xgboost for XGBoost models, lightgbm for LightGBM models, scikit-learn and joblib for scikit-learn forests
attributes:
  diff_mode:
    details: Text files are shown whole; binary model files as size and sha256.
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Make the model folder for the release the deployment mirrors
  rapids.triton_fil.fil_model:
    model_file: "{{ playbook_dir }}/../trained/churn.ubj"
    dest: "{{ playbook_dir }}/../model_repository"
    name: churn
    image: "{{ gcr_image_source }}"
  register: churn

- name: A scikit-learn forest (written as a Treelite checkpoint), class indices instead of probabilities
  rapids.triton_fil.fil_model:
    model_file: /data/models/forest.joblib
    dest: /data/model_repository
    name: forest
    release: "26.06"
    predict_proba: false

- name: Verify the served model against the reference fil_model wrote
  rapids.triton_fil.triton_verify:
    url: localhost:8000
    model: churn
    reference_file: "{{ churn.reference_file }}"
    expected_config: "{{ churn.config }}"
"""

RETURN = r"""
model:
  description: What fil_model read from the model and wrote.
  returned: always
  type: dict
  sample:
    name: churn
    path: /data/model_repository/churn
    framework: xgboost
    framework_version: 3.2.0
    source_format: xgboost_ubj
    model_type: xgboost_ubj
    model_file: xgboost.ubj
    num_features: 32
    num_classes: 2
    task: binary
    objective: "binary:logistic"
    predict_proba: true
config:
  description: The written configuration as M(rapids.triton_fil.triton_model_repository) describes it (verify's expected_config).
  returned: always
  type: dict
files:
  description: The files of the model folder with their sha256, size and whether this run (re)wrote them.
  returned: always
  type: list
  elements: dict
reference_file:
  description: Path of the reference file.
  returned: always
  type: str
release:
  description: The release the folder was made for (from the release matrix).
  returned: always
  type: dict
advisories:
  description: Findings that do not stop serving (a converted format, a newer Treelite checkpoint, stale files).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.fil_model import (
    OUTPUT_FORMATS,
    SOURCE_FORMATS,
    check_params,
    run,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            model_file=dict(type="path", required=True),
            model_format=dict(type="str", default="auto", choices=list(SOURCE_FORMATS)),
            dest=dict(type="path", required=True),
            name=dict(type="str", required=True),
            version=dict(type="int", default=1),
            release=dict(type="str"),
            image=dict(type="str"),
            output_format=dict(type="str", default="auto", choices=list(OUTPUT_FORMATS)),
            predict_proba=dict(type="bool", default=True),
            threshold=dict(type="float", default=0.5),
            max_batch_size=dict(type="int", default=32768),
            instance_count=dict(type="int", default=1),
            dynamic_batching=dict(type="bool", default=True),
            max_queue_delay_microseconds=dict(type="int", default=100),
            cpu_variant=dict(type="bool", default=True),
            reference_file=dict(type="path"),
            reference_rows=dict(type="int", default=8),
            reference_data=dict(type="path"),
            atol=dict(type="float", default=0.0001),
            rtol=dict(type="float", default=0.0001),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda: _result(module), validate=check_params)


def _result(module):
    result = run(module.params, module.check_mode)
    result["warnings"] = list(result["advisories"])
    if not module._diff:  # pylint: disable=protected-access
        result.pop("diff")
    return result


if __name__ == "__main__":
    main()
