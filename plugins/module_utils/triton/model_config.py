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
import struct

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
# Triton configurations are a few kB; protobuf's text parser needs about a second per MiB and the
# report grows with every key, so a larger file is refused before it is parsed.
MAX_CONFIG_BYTES = 1024 * 1024
NUL_SCAN_BYTES = 1024 * 1024
UNKNOWN_KEYS_SHOWN = 10


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


def read_config_text(path):
    """(text, None) or (None, problem): the file must be readable UTF-8 of at most MAX_CONFIG_BYTES."""
    try:
        size = os.path.getsize(path)
        if size > MAX_CONFIG_BYTES:
            return None, (f"{size} bytes, over the {MAX_CONFIG_BYTES // 1024} KiB a model configuration may have here "
                          "(Triton configurations are a few kB) — remove what does not belong in it")
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc}) — fix its permissions"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, (f"is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}) — save it as UTF-8; "
                      "Triton reads protobuf text format")


def _tensor(tensor):
    return {
        "name": tensor.name,
        "data_type": model_config_pb2.DataType.Name(tensor.data_type),
        "dims": [int(d) for d in tensor.dims],
    }


def _ubjson_first_key(head):
    """The first key of a UBJSON object (XGBoost writes keys with an int length marker), or None."""
    if head[:1] != b"{" or len(head) < 3:
        return None
    sizes = {b"i": ("b", 1), b"U": ("B", 1), b"I": (">h", 2), b"l": (">i", 4), b"L": (">q", 8)}
    marker = head[1:2]
    if marker not in sizes:
        return None
    fmt, width = sizes[marker]
    if len(head) < 2 + width:
        return None
    length = struct.unpack(fmt, head[2:2 + width])[0]
    key = head[2 + width:2 + width + length]
    return key.decode("utf-8", "replace") if 0 < length == len(key) else None


def _check_xgboost_legacy(head):
    """The header checks of treelite's legacy binary loader (src/model_loader/xgboost_legacy.cc, ParseStream)."""
    if head[:1] == b"{":
        kind = "JSON" if head[:2] == b'{"' else "UBJSON"
        fix = "xgboost_json" if kind == "JSON" else "xgboost_ubj"
        return (f"is XGBoost {kind}, not the legacy binary format model_type xgboost reads (XGBoost 2 and later "
                f"write UBJSON unless the name ends in .json) — set model_type \"{fix}\" (and "
                "default_model_filename to this file's name)")
    if head[:4] == b"bs64":
        return "is base64-encoded, which the FIL backend no longer reads — save the model again"
    pos = 4 if head[:4] == b"binf" else 0
    pos += 136  # LearnerModelParam
    names = []
    for _name in ("objective", "booster"):
        if len(head) < pos + 8:
            return "is too short for an XGBoost binary model (corrupted header)"
        length = struct.unpack("<Q", head[pos:pos + 8])[0]
        pos += 8
        if length > 256 or len(head) < pos + length:
            return "is not an XGBoost binary model (corrupted header)"
        names.append(head[pos:pos + length])
        pos += length
    if names[1] not in (b"gbtree", b"dart"):
        return f"is not an XGBoost tree model (booster {names[1][:20]!r}; the FIL backend needs gbtree or dart)"
    return None


def _check_treelite_checkpoint(head):
    """treelite's deserializer: three int32 versions first; it reads checkpoints of 4.x and 3.9 (src/serializer.cc)."""
    if len(head) < 12:
        return "is too short for a treelite checkpoint"
    major, minor, patch = struct.unpack("<iii", head[:12])
    if not (major == 4 or (major == 3 and minor == 9)):
        return (f"is not a treelite 4 checkpoint (header says version {major}.{minor}.{patch}; treelite reads 4.x "
                "and 3.9) — serialize the model again with treelite 4")
    return None


def inspect_model_file(path, model_type):
    """(problem or None, num_features, num_classes) for the model file of model_type.

    The file must be readable, non-empty, not only NUL bytes, and parse as model_type: XGBoost JSON is
    parsed whole; UBJSON, XGBoost's legacy binary format, LightGBM text and treelite checkpoints get
    the header checks of the loaders the FIL backend uses (treelite's), so a wrong or damaged file is
    named here instead of failing to load on the GPU node.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(NUL_SCAN_BYTES)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}) — fix its permissions", None, None
    if size == 0:
        return "is empty (0 bytes) — write the model file again", None, None
    if not head.strip(b"\0"):
        return "holds only NUL bytes (a zeroed or truncated copy) — write the model file again", None, None
    if model_type == "xgboost_json":
        try:
            with open(path, encoding="utf-8") as handle:
                param = json.load(handle)["learner"]["learner_model_param"]
            classes = int(param.get("num_class", "0") or 0)
            return None, int(param["num_feature"]), max(classes, 2)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return (f"is not an XGBoost JSON model ({type(exc).__name__}: {str(exc)[:120]}) — save it with "
                    "Booster.save_model('xgboost.json'), or set model_type to the file's format"), None, None
    if model_type == "xgboost_ubj":
        if head[:2] == b'{"':
            return "is XGBoost JSON, not UBJSON — set model_type \"xgboost_json\"", None, None
        if _ubjson_first_key(head) not in ("learner", "version"):
            return "is not an XGBoost UBJSON model — save it with Booster.save_model('xgboost.ubj')", None, None
        return None, None, None
    if model_type == "xgboost":
        return _check_xgboost_legacy(head), None, None
    if model_type == "treelite_checkpoint":
        return _check_treelite_checkpoint(head), None, None
    if model_type == "lightgbm":
        return _inspect_lightgbm(path)
    return None, None, None


def _inspect_lightgbm(path):
    """LightGBM text: treelite's loader (src/model_loader/lightgbm.cc) needs max_feature_idx and num_class."""
    features = classes = None
    trees = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("max_feature_idx="):
                    features = int(line.split("=", 1)[1]) + 1
                elif line.startswith("num_class="):
                    classes = max(int(line.split("=", 1)[1]), 2)
                elif line.startswith("Tree="):
                    trees += 1
                    break
    except (OSError, ValueError) as exc:
        return f"is not a LightGBM model ({exc}) — save it with Booster.save_model('model.txt')", None, None
    missing = [key for key, value in (("max_feature_idx", features), ("num_class", classes)) if value is None]
    if missing or not trees:
        what = f"has no {' or '.join(missing)}" if missing else "holds no trees (no Tree= section)"
        return f"is not a LightGBM model: it {what} — save it with Booster.save_model('model.txt')", None, None
    return None, features, classes


def _fil_rules(name, config_file, config, version_dirs, problems, warnings):
    """FIL backend rules; returns facts (model_type, model_file, num_features, num_classes)."""
    params = {key: value.string_value for key, value in config.parameters.items()}
    where = f"{config_file}: parameters"
    unknown = sorted(set(params) - set(FIL_PARAMETERS))
    if unknown:  # one line per configuration, however many keys
        shown = ", ".join(unknown[:UNKNOWN_KEYS_SHOWN])
        more = f" and {len(unknown) - UNKNOWN_KEYS_SHOWN} more" if len(unknown) > UNKNOWN_KEYS_SHOWN else ""
        warnings.append(f"{where}.{unknown[0]}: {len(unknown)} key{'s' if len(unknown) > 1 else ''} the FIL backend "
                        f"does not know and ignores ({shown}{more}); known: {', '.join(sorted(FIL_PARAMETERS))} — "
                        "check the spelling")
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
            continue
        problem, features, classes = inspect_model_file(path, model_type)
        if problem:
            problems.append(f"{name}/{os.path.basename(version)}/{filename}: {problem}")
        elif facts["num_features"] is None:
            facts["num_features"], facts["num_classes"] = features, classes
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
    try:
        entries = os.listdir(model_dir)
    except OSError as exc:
        return None, [f"{name}/: the model folder cannot be read ({exc.strerror}) — fix its permissions"], warnings
    version_dirs = sorted((os.path.join(model_dir, e) for e in entries
                           if e.isdigit() and os.path.isdir(os.path.join(model_dir, e))), key=lambda p: int(os.path.basename(p)))
    if not version_dirs:
        problems.append(f"{name}/: no version folder; put the model file in a numbered folder such as {name}/1/")
    variants = [("config.pbtxt", config_path)]
    configs_dir = os.path.join(model_dir, "configs")
    if os.path.isdir(configs_dir):
        try:
            variants += sorted((f"configs/{e}", os.path.join(configs_dir, e)) for e in os.listdir(configs_dir)
                               if e.endswith(".pbtxt"))
        except OSError as exc:
            problems.append(f"{name}/configs/: cannot be read ({exc.strerror}) — fix its permissions")
    model = None
    for label, path in variants:
        config_file = f"{name}/{label}"
        text, problem = read_config_text(path)
        if problem:
            problems.append(f"{config_file}: {problem}")
            continue
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
    try:
        listed = os.listdir(path)
    except OSError as exc:
        raise ModelRepositoryError(f"path: {path} cannot be read ({exc.strerror}) — fix its permissions") from exc
    entries = sorted(e for e in listed
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
