# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Facts read from forest model files without their frameworks: features, classes, task, writer version.

XGBoost JSON and UBJSON carry ``version`` ([major, minor, patch] of the XGBoost that wrote them)
and ``learner.learner_model_param`` (num_feature, num_class) and ``learner.objective.name``.
LightGBM text models carry ``max_feature_idx``, ``num_class`` and ``objective`` in their header.
Treelite checkpoints start with the v4 header (docs/serialization/v4.rst of dmlc/treelite):
int32 major, minor, patch; uint8 threshold and leaf types; uint64 num_tree; int32 num_feature;
uint8 task_type; uint8 average_tree_output; int32 num_target; then num_class as a uint64 length
and int32 values. Legacy XGBoost binaries are not read (no features or version): the validator
says so instead of guessing.
"""

from __future__ import annotations

import json
import struct

TREELITE_TASKS = {0: "binary", 1: "regressor", 2: "multiclass", 3: "ranking", 4: "isolation_forest"}


class UbjsonError(ValueError):
    pass


def _ubj_value(data, pos, marker):
    if marker == "{":
        return _ubj_container(data, pos, "}")
    if marker == "[":
        return _ubj_container(data, pos, "]")
    if marker in "ZN":
        return None, pos
    if marker == "T":
        return True, pos
    if marker == "F":
        return False, pos
    fixed = {"i": "<b", "U": "<B", "I": ">h", "l": ">i", "L": ">q", "d": ">f", "D": ">d"}
    if marker in fixed:
        fmt = fixed[marker]
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise UbjsonError("truncated number")
        return struct.unpack_from(fmt, data, pos)[0], pos + size
    if marker == "C":
        return chr(data[pos]), pos + 1
    if marker in "SH":
        length, pos = _ubj_int(data, pos)
        text = data[pos:pos + length].decode("utf-8", "replace")
        return text, pos + length
    raise UbjsonError(f"unknown UBJSON marker {marker!r} at {pos - 1}")


def _ubj_int(data, pos):
    marker = chr(data[pos])
    value, pos = _ubj_value(data, pos + 1, marker)
    if not isinstance(value, int):
        raise UbjsonError("length is not an integer")
    return value, pos


def _ubj_container(data, pos, end):
    is_object = end == "}"
    item_type = count = None
    if chr(data[pos]) == "$":
        item_type, pos = chr(data[pos + 1]), pos + 2
    if chr(data[pos]) == "#":
        count, pos = _ubj_int(data, pos + 1)
    out = {} if is_object else []
    index = 0
    while True:
        if count is None:
            if chr(data[pos]) == end:
                return out, pos + 1
        elif index == count:
            return out, pos
        if is_object:
            length, pos = _ubj_int(data, pos)
            key, pos = data[pos:pos + length].decode("utf-8", "replace"), pos + length
        marker = item_type
        if marker is None:
            marker, pos = chr(data[pos]), pos + 1
        value, pos = _ubj_value(data, pos, marker)
        if is_object:
            out[key] = value
        else:
            out.append(value)
        index += 1


def read_ubjson(data):
    """Decode a UBJSON document (the subset XGBoost writes: typed/counted containers, numbers, strings)."""
    try:
        value = _ubj_value(data, 1, chr(data[0]))[0]
    except (IndexError, struct.error) as exc:
        raise UbjsonError(f"truncated UBJSON: {exc}") from None
    return value


def _xgboost_facts(doc):
    learner = doc["learner"]
    param = learner["learner_model_param"]
    classes = int(str(param.get("num_class", "0")) or 0)
    objective = learner.get("objective", {}).get("name")
    version = tuple(int(v) for v in doc.get("version", [])[:3]) or None
    if objective and objective.startswith("multi:"):
        task = "multiclass"
    elif objective and objective.startswith("binary:"):
        task = "binary"
    else:
        task = "regressor"
    return {"num_features": int(param["num_feature"]), "num_classes": max(classes, 2) if task != "regressor" else 1,
            "task": task, "objective": objective, "xgboost_version": version}


def read_model_facts(path, model_type):
    """{num_features, num_classes, task, ...} for the file; {} where the format is not read here or the file is bad."""
    try:
        if model_type == "xgboost_json":
            with open(path, encoding="utf-8") as handle:
                return _xgboost_facts(json.load(handle))
        if model_type == "xgboost_ubj":
            with open(path, "rb") as handle:
                return _xgboost_facts(read_ubjson(handle.read()))
        if model_type == "lightgbm":
            return _lightgbm_facts(path)
        if model_type == "treelite_checkpoint":
            return _checkpoint_facts(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return {}
    return {}


def _lightgbm_facts(path):
    features = classes = objective = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("max_feature_idx="):
                features = int(line.split("=", 1)[1]) + 1
            elif line.startswith("num_class="):
                classes = int(line.split("=", 1)[1])
            elif line.startswith("objective="):
                objective = line.split("=", 1)[1].strip()
            elif line.startswith("Tree="):
                break
    name = (objective or "").split(" ", 1)[0]
    if name in ("binary", "cross_entropy", "xentropy"):
        task = "binary"
    elif name in ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"):
        task = "multiclass"
    else:
        task = "regressor"
    if features is None:
        return {}
    return {"num_features": features, "num_classes": max(classes or 1, 2) if task != "regressor" else 1,
            "task": task, "objective": objective}


def _checkpoint_facts(path):
    with open(path, "rb") as handle:
        head = handle.read(4096)
    header = struct.unpack_from("<iiiBBQiBBi", head, 0)
    major, minor, patch, num_feature, task_type = header[0], header[1], header[2], header[6], header[7]
    offset = struct.calcsize("<iiiBBQiBBi")
    (count,) = struct.unpack_from("<Q", head, offset)
    num_class = struct.unpack_from(f"<{count}i", head, offset + 8) if 0 < count < 64 else (1,)
    task = TREELITE_TASKS.get(task_type, "regressor")
    raw_classes = int(num_class[0])
    classes = 2 if task == "binary" else raw_classes
    return {"num_features": int(num_feature), "num_classes": classes if task in ("binary", "multiclass") else 1,
            "task": "multiclass" if task == "multiclass" and classes > 2 else ("binary" if task in ("binary", "multiclass")
                                                                               else "regressor"),
            "treelite_version": (major, minor, patch), "treelite_num_class": raw_classes}
