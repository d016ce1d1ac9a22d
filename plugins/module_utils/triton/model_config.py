# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Validate a Triton model repository with Triton's own ModelConfig protobuf.

Every config.pbtxt (and configs/<name>.pbtxt variant) is parsed with
``tritonclient.grpc.model_config_pb2.ModelConfig`` through ``google.protobuf.text_format``, so a
field Triton would reject is rejected here, with the file, line and field named. Models served by
the FIL backend get the backend's own rules on top: parameter names and values, the model file
that ``model_type`` needs in every version folder, ``input__0``/``output__0`` and, where the model
file is readable, the feature count and number of classes.
"""

from __future__ import annotations

import json
import os
import re

try:
    from google.protobuf import text_format
    from google.protobuf.json_format import MessageToDict
    from tritonclient.grpc import model_config_pb2

    HAS_MODEL_CONFIG = True
    MODEL_CONFIG_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_MODEL_CONFIG = False
    MODEL_CONFIG_IMPORT_ERROR = exc

FIL_MODEL_FILES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
FIL_BOOLEAN_PARAMETERS = ("output_class", "predict_proba", "use_experimental_optimizations",
                          "xgboost_allow_unknown_field")
FIL_CHOICE_PARAMETERS = {
    "storage_type": ("AUTO", "DENSE", "SPARSE", "SPARSE8"),
    "algo": ("ALGO_AUTO", "NAIVE", "TREE_REORG", "BATCH_TREE_REORG"),
    "layout": ("depth_first", "breadth_first", "layered"),
}
FIL_INTEGER_PARAMETERS = ("threads_per_tree", "blocks_per_sm", "transfer_threshold", "chunk_size", "cpu_nthread")
FIL_PARAMETERS = (("model_type", "threshold") + FIL_BOOLEAN_PARAMETERS + tuple(FIL_CHOICE_PARAMETERS)
                  + FIL_INTEGER_PARAMETERS)
IGNORED_ENTRIES = ("__pycache__",)


class ModelRepositoryError(Exception):
    """The repository cannot be read at all (missing folder, protobuf unavailable)."""


def parse_config_text(text, source="config.pbtxt"):
    """Parse config.pbtxt text into a ModelConfig message; raise ValueError naming line and field."""
    if not HAS_MODEL_CONFIG:
        raise ModelRepositoryError(f"tritonclient[grpc] and protobuf are required: {MODEL_CONFIG_IMPORT_ERROR}")
    message = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        # protobuf says e.g. '4:1 : Message type "inference.ModelConfig" has no field named "max_batch_sizee".'
        detail = str(exc)
        match = re.match(r"^(\d+):(\d+)\s*:\s*(.*)$", detail, re.S)
        if match:
            line, column, detail = match.groups()
            raise ValueError(f"{source}:{line}:{column}: {detail.strip()} — fix the field against Triton's "
                             "model_config.proto (ModelConfig)") from None
        raise ValueError(f"{source}: {detail}") from None
    return message


def _tensor(tensor):
    return {
        "name": tensor.name,
        "data_type": model_config_pb2.DataType.Name(tensor.data_type),
        "dims": [int(d) for d in tensor.dims],
    }


def read_forest_facts(path, model_type):
    """(num_features, num_classes) from the model file where the format is text we can read; else Nones."""
    try:
        if model_type == "xgboost_json":
            with open(path, encoding="utf-8") as handle:
                param = json.load(handle)["learner"]["learner_model_param"]
            classes = int(param.get("num_class", "0") or 0)
            return int(param["num_feature"]), max(classes, 2)
        if model_type == "lightgbm":
            features = classes = None
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.startswith("max_feature_idx="):
                        features = int(line.split("=", 1)[1]) + 1
                    elif line.startswith("num_class="):
                        classes = max(int(line.split("=", 1)[1]), 2)
                    elif line.startswith("Tree="):
                        break
            return features, classes
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    return None, None


def _fil_rules(name, config_file, config, version_dirs, problems, warnings):
    """FIL backend rules; returns facts (model_type, model_file, num_features, num_classes)."""
    params = {key: value.string_value for key, value in config.parameters.items()}
    where = f"{config_file}: parameters"
    for key in sorted(set(params) - set(FIL_PARAMETERS)):
        warnings.append(f"{where}.{key}: not a FIL backend parameter (known: {', '.join(sorted(FIL_PARAMETERS))}); "
                        "the backend ignores it — check the spelling")
    model_type = params.get("model_type")
    if model_type is None:
        problems.append(f"{where}.model_type: missing; set it to one of {', '.join(FIL_MODEL_FILES)}")
    elif model_type not in FIL_MODEL_FILES:
        problems.append(f"{where}.model_type: {model_type!r} is not one of {', '.join(FIL_MODEL_FILES)}")
        model_type = None
    for key in FIL_BOOLEAN_PARAMETERS:
        if key in params and params[key] not in ("true", "false"):
            problems.append(f"{where}.{key}: {params[key]!r} must be the string \"true\" or \"false\"")
    for key, choices in FIL_CHOICE_PARAMETERS.items():
        if key in params and params[key] not in choices:
            problems.append(f"{where}.{key}: {params[key]!r} is not one of {', '.join(choices)}")
    for key in FIL_INTEGER_PARAMETERS:
        if key in params and not re.fullmatch(r"-?\d+", params[key]):
            problems.append(f"{where}.{key}: {params[key]!r} must be an integer")
    if "threshold" in params:
        try:
            threshold = float(params["threshold"])
            if not 0.0 <= threshold <= 1.0:
                problems.append(f"{where}.threshold: {threshold} is outside 0..1")
        except ValueError:
            problems.append(f"{where}.threshold: {params['threshold']!r} is not a number, e.g. \"0.5\"")
    output_class = params.get("output_class", "true") == "true"
    predict_proba = params.get("predict_proba", "false") == "true"
    if predict_proba and not output_class:
        problems.append(f"{where}.predict_proba: \"true\" needs output_class \"true\" (probabilities are per class)")

    if config.max_batch_size <= 0:
        problems.append(f"{config_file}: max_batch_size: the FIL backend batches rows; set it > 0 (e.g. 32768)")
    if [t.name for t in config.input] != ["input__0"]:
        problems.append(f"{config_file}: input: FIL models take exactly one input named input__0 "
                        f"(found {[t.name for t in config.input]})")
    if [t.name for t in config.output] != ["output__0"]:
        problems.append(f"{config_file}: output: FIL models give exactly one output named output__0 "
                        f"(found {[t.name for t in config.output]})")
    for kind, tensors in (("input", config.input), ("output", config.output)):
        for tensor in tensors:
            if tensor.data_type != model_config_pb2.TYPE_FP32:
                problems.append(f"{config_file}: {kind} {tensor.name}.data_type: "
                                f"{model_config_pb2.DataType.Name(tensor.data_type)}; the FIL backend uses TYPE_FP32")
            if len(tensor.dims) != 1:
                problems.append(f"{config_file}: {kind} {tensor.name}.dims: {list(tensor.dims)}; give one "
                                "dimension (features for the input, values per row for the output)")

    facts = {"model_type": model_type, "model_file": None, "num_features": None, "num_classes": None}
    if model_type is None:
        return facts
    filename = config.default_model_filename or FIL_MODEL_FILES[model_type]
    facts["model_file"] = filename
    for version in version_dirs:
        path = os.path.join(version, filename)
        if not os.path.isfile(path):
            problems.append(f"{name}/{os.path.basename(version)}/{filename}: missing; model_type "
                            f"{model_type!r} reads {filename} from every version folder")
        elif facts["num_features"] is None:
            facts["num_features"], facts["num_classes"] = read_forest_facts(path, model_type)
    features, classes = facts["num_features"], facts["num_classes"]
    if features and len(config.input) == 1 and len(config.input[0].dims) == 1:
        declared = int(config.input[0].dims[0])
        if declared not in (features, -1):
            problems.append(f"{config_file}: input {config.input[0].name}.dims: [{declared}] but {filename} "
                            f"has {features} features; set dims: [ {features} ]")
    if classes and output_class and len(config.output) == 1 and len(config.output[0].dims) == 1:
        want = classes if predict_proba else 1
        declared = int(config.output[0].dims[0])
        if declared != want:
            problems.append(f"{config_file}: output {config.output[0].name}.dims: [{declared}] but "
                            f"{'predict_proba gives one value per class' if predict_proba else 'class labels are one value per row'}"
                            f" ({classes} classes); set dims: [ {want} ]")
    return facts


def validate_model(root, name):
    """(model facts, problems, warnings) for the model folder root/name."""
    model_dir = os.path.join(root, name)
    problems, warnings = [], []
    config_path = os.path.join(model_dir, "config.pbtxt")
    if not os.path.isfile(config_path):
        return None, [f"{name}/config.pbtxt: missing; every model folder needs one (the FIL backend "
                      "cannot auto-complete its configuration)"], warnings
    version_dirs = sorted((os.path.join(model_dir, e) for e in os.listdir(model_dir)
                           if e.isdigit() and os.path.isdir(os.path.join(model_dir, e))), key=lambda p: int(os.path.basename(p)))
    if not version_dirs:
        problems.append(f"{name}/: no version folder; put the model file in a numbered folder such as {name}/1/")
    variants = [("config.pbtxt", config_path)]
    configs_dir = os.path.join(model_dir, "configs")
    if os.path.isdir(configs_dir):
        variants += sorted((f"configs/{e}", os.path.join(configs_dir, e)) for e in os.listdir(configs_dir)
                           if e.endswith(".pbtxt"))
    model = None
    for label, path in variants:
        config_file = f"{name}/{label}"
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        try:
            config = parse_config_text(text, config_file)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if config.name and config.name != name:
            problems.append(f"{config_file}: name: {config.name!r} differs from the folder name {name!r}; "
                            "Triton requires them to match")
        if not config.backend and not config.platform:
            problems.append(f"{config_file}: backend: missing; set backend: \"fil\" for forest models")
        facts = {}
        if config.backend == "fil":
            facts = _fil_rules(name, config_file, config, version_dirs, problems, warnings)
        if label != "config.pbtxt":
            continue
        as_dict = MessageToDict(config, preserving_proto_field_name=True)
        model = {
            "name": name,
            "path": model_dir,
            "backend": config.backend or None,
            "platform": config.platform or None,
            "max_batch_size": int(config.max_batch_size),
            "versions": [int(os.path.basename(v)) for v in version_dirs],
            "inputs": [_tensor(t) for t in config.input],
            "outputs": [_tensor(t) for t in config.output],
            "instance_kinds": sorted({model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind) for g in config.instance_group}),
            "parameters": {key: value.string_value for key, value in config.parameters.items()},
            "dynamic_batching": "dynamic_batching" in as_dict,
            "config_variants": [v[0] for v in variants[1:]],
        }
        model.update(facts)
    return model, problems, warnings


def validate_repository(path, models=None):
    """Validate every model folder under path (or only those named in models).

    Returns {'path', 'models': [...], 'problems': [...], 'warnings': [...]}; raises
    ModelRepositoryError when the repository itself is unusable.
    """
    if not HAS_MODEL_CONFIG:
        raise ModelRepositoryError(f"tritonclient[grpc] and protobuf are required: {MODEL_CONFIG_IMPORT_ERROR}")
    if not os.path.isdir(path):
        raise ModelRepositoryError(f"path: {path} is not a folder; point it at the model repository "
                                   "(one sub-folder per model)")
    entries = sorted(e for e in os.listdir(path)
                     if os.path.isdir(os.path.join(path, e)) and not e.startswith(".") and e not in IGNORED_ENTRIES)
    if models:
        missing = sorted(set(models) - set(entries))
        if missing:
            raise ModelRepositoryError(f"models: {', '.join(missing)} not found under {path} "
                                       f"(found: {', '.join(entries) or 'nothing'})")
        entries = [e for e in entries if e in models]
    result = {"path": path, "models": [], "problems": [], "warnings": []}
    if not entries:
        result["problems"].append(f"{path}: no model folders; a repository holds <model>/config.pbtxt and "
                                  "<model>/<version>/<model file>")
    for name in entries:
        model, problems, warnings = validate_model(path, name)
        if model is not None:
            result["models"].append(model)
        result["problems"] += problems
        result["warnings"] += warnings
    return result
