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

``inspect_model_file`` is what the validator calls: the file must be readable, non-empty, not only NUL
bytes, and parse as its model_type (XGBoost JSON and UBJSON are decoded whole; the legacy binary
format, LightGBM text and treelite checkpoints get the header checks of the treelite loaders the FIL
backend uses), and it returns the facts above. Which releases load a file that parses is
releases.model_file_findings' answer, from the facts.
"""

from __future__ import annotations

import json
import os
import struct

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError

# The file name the FIL backend loads for each model_type (fil_backend docs/model_config.md).
FIL_MODEL_FILES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
TREELITE_TASKS = {0: "binary", 1: "regressor", 2: "multiclass", 3: "ranking", 4: "isolation_forest"}
# The head read for the NUL scan and the header checks.
HEAD_BYTES = 1024 * 1024
_CHECKPOINT_HEADER = "<iiiBBQiBBi"


class UbjsonError(TritonFilError, ValueError):
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
        if count < 0 or count > len(data):  # a hostile count must not loop past the data (typed nulls take 0 bytes)
            raise UbjsonError(f"container count {count} beyond the {len(data)} bytes of the document")
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
    except RecursionError:
        raise UbjsonError("containers nested deeper than Python's recursion limit") from None
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
    return inspect_model_file(path, model_type)[1]


def inspect_model_file(path, model_type):
    """(problem or None, facts) for the model file of model_type; facts is {} when there is a problem."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}) — fix its permissions", {}
    if size == 0:
        return "is empty (0 bytes) — write the model file again", {}
    if not head.strip(b"\0"):
        return "holds only NUL bytes (a zeroed or truncated copy) — write the model file again", {}
    reader = {"xgboost_json": _inspect_xgboost_json, "xgboost_ubj": _inspect_xgboost_ubj,
              "xgboost": _inspect_xgboost_legacy, "lightgbm": _inspect_lightgbm,
              "treelite_checkpoint": _inspect_checkpoint}.get(model_type)
    if reader is None:
        return None, {}
    problem, facts = reader(path, head)
    return problem, ({} if problem else facts)


def _inspect_xgboost_json(path, _head):
    try:
        with open(path, encoding="utf-8") as handle:
            return None, _xgboost_facts(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        return (f"is not an XGBoost JSON model ({type(exc).__name__}: {str(exc)[:120]}) — save it with "
                "Booster.save_model('xgboost.json'), or set model_type to the file's format"), {}


def _inspect_xgboost_ubj(path, head):
    if head[:2] == b'{"':
        return "is XGBoost JSON, not UBJSON — set model_type \"xgboost_json\"", {}
    try:
        with open(path, "rb") as handle:
            return None, _xgboost_facts(read_ubjson(handle.read()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return (f"is not an XGBoost UBJSON model ({type(exc).__name__}: {str(exc)[:120]}) — save it with "
                "Booster.save_model('xgboost.ubj')"), {}


def _inspect_xgboost_legacy(_path, head):
    """The header checks of treelite's legacy binary loader (src/model_loader/xgboost_legacy.cc, ParseStream)."""
    if head[:1] == b"{":
        kind = "JSON" if head[:2] == b'{"' else "UBJSON"
        fix = "xgboost_json" if kind == "JSON" else "xgboost_ubj"
        return (f"is XGBoost {kind}, not the legacy binary format model_type xgboost reads (XGBoost 2 and later "
                f"write UBJSON unless the name ends in .json) — set model_type \"{fix}\" (and "
                "default_model_filename to this file's name)"), {}
    if head[:4] == b"bs64":
        return "is base64-encoded, which the FIL backend no longer reads — save the model again", {}
    pos = 4 if head[:4] == b"binf" else 0
    pos += 136  # LearnerModelParam
    names = []
    for _name in ("objective", "booster"):
        if len(head) < pos + 8:
            return "is too short for an XGBoost binary model (corrupted header)", {}
        length = struct.unpack("<Q", head[pos:pos + 8])[0]
        pos += 8
        if length > 256 or len(head) < pos + length:
            return "is not an XGBoost binary model (corrupted header)", {}
        names.append(head[pos:pos + length])
        pos += length
    if names[1] not in (b"gbtree", b"dart"):
        return f"is not an XGBoost tree model (booster {names[1][:20]!r}; the FIL backend needs gbtree or dart)", {}
    return None, {}


def _inspect_lightgbm(path, _head):
    """LightGBM text: treelite's loader (src/model_loader/lightgbm.cc) needs max_feature_idx and num_class."""
    features = classes = objective = None
    trees = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("max_feature_idx="):
                    features = int(line.split("=", 1)[1]) + 1
                elif line.startswith("num_class="):
                    classes = int(line.split("=", 1)[1])
                elif line.startswith("objective="):
                    objective = line.split("=", 1)[1].strip()
                elif line.startswith("Tree="):
                    trees += 1
                    break
    except (OSError, ValueError) as exc:
        return f"is not a LightGBM model ({exc}) — save it with Booster.save_model('model.txt')", {}
    missing = [key for key, value in (("max_feature_idx", features), ("num_class", classes)) if value is None]
    if missing or not trees:
        what = f"has no {' or '.join(missing)}" if missing else "holds no trees (no Tree= section)"
        return f"is not a LightGBM model: it {what} — save it with Booster.save_model('model.txt')", {}
    name = (objective or "").split(" ", 1)[0]
    if name in ("binary", "cross_entropy", "xentropy"):
        task = "binary"
    elif name in ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"):
        task = "multiclass"
    else:
        task = "regressor"
    return None, {"num_features": features, "num_classes": max(classes or 1, 2) if task != "regressor" else 1,
                  "task": task, "objective": objective}


def _inspect_checkpoint(_path, head):
    """Treelite's deserializer reads three int32 versions first (src/serializer.cc); the rest is the v4 header.

    Which versions a release loads is releases.model_file_findings' call; the v4 fields are read only from a
    4.x checkpoint (3.9 checkpoints have the v3 layout, which treelite 4 converts on load).
    """
    if len(head) < 12:
        return "is too short for a treelite checkpoint", {}
    major, minor, patch = struct.unpack_from("<iii", head, 0)
    facts = {"treelite_version": (major, minor, patch)}
    if major != 4:
        return None, facts
    try:
        header = struct.unpack_from(_CHECKPOINT_HEADER, head, 0)
        offset = struct.calcsize(_CHECKPOINT_HEADER)
        (count,) = struct.unpack_from("<Q", head, offset)
        num_class = struct.unpack_from(f"<{count}i", head, offset + 8) if 0 < count < 64 else (1,)
    except struct.error:
        return "is too short for a treelite 4 checkpoint (truncated header)", {}
    num_feature, task_type = header[6], header[7]
    task = TREELITE_TASKS.get(task_type, "regressor")
    raw_classes = int(num_class[0])
    classes = 2 if task == "binary" else raw_classes
    facts.update({"num_features": int(num_feature), "num_classes": classes if task in ("binary", "multiclass") else 1,
                  "task": "multiclass" if task == "multiclass" and classes > 2 else ("binary" if task in ("binary", "multiclass")
                                                                                     else "regressor"),
                  "treelite_num_class": raw_classes})
    return None, facts
