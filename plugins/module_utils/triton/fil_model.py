# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Make a FIL model folder from a trained forest: model file, config.pbtxt, CPU variant, reference file.

plan() computes every byte first (nothing is written): the model file in a format the target
release loads (releases.py), the configuration in the release's parameter names, and a reference
file of input rows with the framework's own predictions, in the format roles/verify reads
(model_repository/fil_reference.json). apply() writes only the files whose bytes differ.

Predictions come from the framework that trained the model (xgboost, lightgbm, scikit-learn); only
where that framework cannot read the file (legacy XGBoost binaries under XGBoost >= 3.1, Treelite
checkpoints) does Treelite's GTIL predict, and the reference file says so. Converted files (an
XGBoost model rewritten as a checkpoint for a release whose Treelite cannot parse it) are checked
against the framework's predictions before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import model_files, releases

FIL_MODEL_FILES = model_files.FIL_MODEL_FILES  # the file name the backend loads, by model_type
SOURCE_FORMATS = ("auto", "xgboost_json", "xgboost_ubj", "xgboost", "lightgbm", "sklearn", "treelite_checkpoint")
OUTPUT_FORMATS = ("auto", "native", "treelite_checkpoint")
# scikit-learn forests FIL serves through Treelite (fil_backend docs/model_support.md), by class name.
SKLEARN_FORESTS = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
                   "GradientBoostingClassifier", "GradientBoostingRegressor", "HistGradientBoostingClassifier",
                   "HistGradientBoostingRegressor")
XGBOOST_OBJECTIVES = ("binary:logistic", "multi:softprob", "multi:softmax")  # plus every reg:*
# Rows whose probability lies this close to the threshold are redrawn: float32 on the GPU could
# put them on the other side of it.
THRESHOLD_MARGIN = 1e-3


class FilModelError(TritonFilError, ValueError):
    """Bad input, named by parameter, with the fix."""


def _lib(name):
    try:
        return __import__(name)
    except ImportError as exc:
        raise FilModelError(f"{name} is needed to read this model ({exc}); install it on the host running the "
                            "module") from None


def detect_format(path, data):
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pkl", ".pickle", ".joblib"):
        return "sklearn"
    if ext == ".tl":
        return "treelite_checkpoint"
    if data[:1] == b"{":
        head = data[:64]
        if head[1:2] in (b'"', b" ", b"\n", b"\r", b"\t"):
            return "xgboost_json"
        return "xgboost_ubj"
    if data.startswith(b"tree\n") or data.startswith(b"tree\r\n"):
        return "lightgbm"
    if len(data) >= 12 and data[:4] == b"\x04\x00\x00\x00":
        return "treelite_checkpoint"
    if ext in (".model", ".bin", ".deprecated"):
        return "xgboost"
    raise FilModelError(f"model_format: cannot tell the format of {path}; set model_format to one of "
                        f"{', '.join(SOURCE_FORMATS[1:])}")


class _Model:
    """A loaded model: facts (num_features, num_classes, task, label_rule) and predict(rows) -> framework output."""

    def __init__(self, path, data, fmt):
        self.path, self.data, self.format = path, data, fmt
        self.advisories = []
        self.treelite_model = None
        loader = getattr(self, f"_load_{fmt}")
        loader()

    # --- loaders -------------------------------------------------------------------------------
    def _load_xgboost_doc(self, doc):
        facts = model_files._xgboost_facts(doc)  # pylint: disable=protected-access
        objective = facts["objective"] or ""
        if objective not in XGBOOST_OBJECTIVES and not objective.startswith("reg:"):
            raise FilModelError(f"model_file: XGBoost objective {objective!r} is not one fil_model can describe "
                                f"(supported: {', '.join(XGBOOST_OBJECTIVES)}, reg:*); write config.pbtxt by hand")
        self.facts = dict(facts, label_rule="argmax" if facts["task"] == "multiclass" else "threshold",
                          framework="xgboost")
        xgb = _lib("xgboost")
        self.booster = xgb.Booster(params={"nthread": 1})
        self.booster.load_model(bytearray(self.data))
        self.framework_version = xgb.__version__
        self._xgb = xgb

    def _load_xgboost_json(self):
        try:
            doc = json.loads(self.data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FilModelError(f"model_file: {self.path} is not XGBoost JSON: {exc}") from None
        self._load_xgboost_doc(doc)

    def _load_xgboost_ubj(self):
        try:
            doc = model_files.read_ubjson(self.data)
        except (ValueError, IndexError) as exc:
            raise FilModelError(f"model_file: {self.path} is not XGBoost UBJSON: {exc}") from None
        self._load_xgboost_doc(doc)

    def _load_xgboost(self):
        treelite = _lib("treelite")
        xgb_version = None
        try:
            xgb = __import__("xgboost")
            xgb_version = xgb.__version__
            booster = xgb.Booster(params={"nthread": 1})
            booster.load_model(bytearray(self.data))
            self.booster, self._xgb, self.framework_version = booster, xgb, xgb_version
        except Exception:  # pylint: disable=broad-except
            self.booster = None  # XGBoost >= 3.1 cannot read the legacy binary format
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "xgboost.model")
            with open(path, "wb") as handle:
                handle.write(self.data)
            try:
                self.treelite_model = treelite.frontend.load_xgboost_model_legacy_binary(path)
            except Exception as exc:  # pylint: disable=broad-except
                raise FilModelError(f"model_file: {self.path} is not a legacy XGBoost binary model: {exc}") from None
        self._facts_from_treelite(framework="xgboost")
        if self.booster is None:
            self.framework_version = treelite.__version__
            self.facts["predicted_by"] = (f"treelite {treelite.__version__} GTIL (xgboost {xgb_version} cannot read "
                                          "the legacy binary format, removed in XGBoost 3.1)")

    def _load_lightgbm(self):
        lgb = _lib("lightgbm")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.txt")
            with open(path, "wb") as handle:
                handle.write(self.data)
            facts = model_files.read_model_facts(path, "lightgbm")
        if not facts:
            raise FilModelError(f"model_file: {self.path} is not a LightGBM text model (no max_feature_idx)")
        self.booster = lgb.Booster(model_str=self.data.decode("utf-8"))
        self.framework_version = lgb.__version__
        self.facts = dict(facts, label_rule="argmax" if facts["task"] == "multiclass" else "threshold",
                          framework="lightgbm")

    def _load_sklearn(self):
        joblib = _lib("joblib")
        treelite = _lib("treelite")
        sklearn = _lib("sklearn")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.pkl")
            with open(path, "wb") as handle:
                handle.write(self.data)
            try:
                estimator = joblib.load(path)
            except Exception as exc:  # pylint: disable=broad-except
                raise FilModelError(f"model_file: {self.path} could not be unpickled: {exc}") from None
        kind = type(estimator).__name__
        if kind not in SKLEARN_FORESTS:
            raise FilModelError(f"model_file: {self.path} holds a {kind}; fil_model converts scikit-learn forests "
                                f"({', '.join(SKLEARN_FORESTS)})")
        if hasattr(estimator, "n_jobs"):
            estimator.n_jobs = 1  # a fixed summation order: the same rows give the same bytes
        self.estimator = estimator
        self.treelite_model = treelite.sklearn.import_model(estimator)
        self.framework_version = sklearn.__version__
        self._facts_from_treelite(framework="scikit-learn")
        self.facts["estimator"] = kind

    def _load_treelite_checkpoint(self):
        treelite = _lib("treelite")
        try:
            self.treelite_model = treelite.Model.deserialize_bytes(self.data)
        except Exception as exc:  # pylint: disable=broad-except
            raise FilModelError(f"model_file: {self.path} is not a Treelite checkpoint: {exc}") from None
        self.framework_version = treelite.__version__
        self._facts_from_treelite(framework="treelite")

    def _facts_from_treelite(self, framework):
        treelite = _lib("treelite")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "checkpoint.tl")
            self.treelite_model.serialize(path)
            facts = model_files.read_model_facts(path, "treelite_checkpoint")
        if facts.get("task") not in ("binary", "multiclass", "regressor") or not facts.get("num_features"):
            raise FilModelError(f"model_file: {self.path}: fil_model describes classifiers and regressors only "
                                f"(Treelite says {facts.get('task')!r})")
        facts.pop("treelite_version", None)
        rule = "threshold" if facts["treelite_num_class"] == 1 and facts["task"] != "regressor" else "argmax"
        self.facts = dict(facts, label_rule=rule, framework=framework,
                          predicted_by=f"treelite {treelite.__version__} GTIL" if framework == "treelite" else None)

    # --- predictions ---------------------------------------------------------------------------
    def raw(self, rows):
        """Class-1 probability (binary, threshold rule), per-class probabilities, or the regression value."""
        np = _lib("numpy")
        if getattr(self, "estimator", None) is not None:
            if self.facts["task"] == "regressor":
                return np.asarray(self.estimator.predict(rows), dtype=np.float64)
            proba = np.asarray(self.estimator.predict_proba(rows), dtype=np.float64)
            return proba[:, 1] if self.facts["label_rule"] == "threshold" else proba
        if getattr(self, "booster", None) is not None:
            if self.format == "lightgbm":
                out = self.booster.predict(rows, num_threads=1)
            else:
                out = self.booster.predict(self._xgb.DMatrix(rows, nthread=1))
                if self.facts.get("objective") == "multi:softmax":
                    raise FilModelError("predict_proba: a multi:softmax XGBoost model predicts labels only; retrain "
                                        "with multi:softprob for probabilities, or set predict_proba: false")
            return np.asarray(out, dtype=np.float64)
        return gtil(self.treelite_model, rows)

    def labels_only(self, rows):
        """Class labels for a multi:softmax XGBoost model (its predict gives labels)."""
        np = _lib("numpy")
        return np.asarray(self.booster.predict(self._xgb.DMatrix(rows, nthread=1)), dtype=np.float64)


def gtil(treelite_model, rows):
    np = _lib("numpy")
    treelite = _lib("treelite")
    out = np.asarray(treelite.gtil.predict(treelite_model, np.ascontiguousarray(rows, dtype=np.float32)),
                     dtype=np.float64)
    out = out.reshape(out.shape[0], -1)
    return out[:, 0] if out.shape[1] == 1 else out


def fil_output(model, raw, predict_proba, threshold):
    """What the FIL backend returns for rows whose framework output is raw (shape [rows, values])."""
    np = _lib("numpy")
    facts = model.facts
    if facts["task"] == "regressor":
        return raw.reshape(raw.shape[0], 1)
    if facts["label_rule"] == "threshold":
        if predict_proba:
            return np.stack([1.0 - raw, raw], axis=1)
        return (raw > threshold).astype(np.float64).reshape(-1, 1)
    if predict_proba:
        return raw
    return np.argmax(raw, axis=1).astype(np.float64).reshape(-1, 1)


def _split_ranges(treelite_model, num_features):
    """Per feature (low, high) of the thresholds the trees test; None for features no tree splits on."""
    doc = json.loads(treelite_model.dump_as_json(pretty_print=False))
    ranges = [None] * num_features
    for tree in doc.get("trees", []):
        for node in tree.get("nodes", []):
            if "split_feature_id" in node and "threshold" in node:
                feature, value = node["split_feature_id"], float(node["threshold"])
                if 0 <= feature < num_features:
                    low, high = ranges[feature] or (value, value)
                    ranges[feature] = (min(low, value), max(high, value))
    return ranges


def reference_rows(model, count, seed, threshold, predict_proba):
    """count rows spread over the split thresholds of the forest (4 decimals: exact through JSON and float32)."""
    np = _lib("numpy")
    treelite_model = model.treelite_model
    if treelite_model is None:
        treelite = _lib("treelite")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model" + {"xgboost_json": ".json", "xgboost_ubj": ".ubj"}.get(model.format, ".txt"))
            with open(path, "wb") as handle:
                handle.write(model.data)
            if model.format == "lightgbm":
                treelite_model = treelite.frontend.load_lightgbm_model(path)
            else:
                treelite_model = treelite.frontend.load_xgboost_model(
                    path, format_choice="ubjson" if model.format == "xgboost_ubj" else "json")
    features = model.facts["num_features"]
    ranges = _split_ranges(treelite_model, features)
    rng = np.random.default_rng(seed)
    rows = []
    attempts = 0
    while len(rows) < count:
        attempts += 1
        row = np.empty(features)
        for i, span in enumerate(ranges):
            if span is None:
                row[i] = rng.normal()
            else:
                low, high = span
                width = max(high - low, 1e-3)
                row[i] = rng.uniform(low - 0.25 * width, high + 0.25 * width)
        row = np.round(row, 4)
        if (model.facts["label_rule"] == "threshold" and model.facts["task"] != "regressor" and not predict_proba
                and attempts < 50 * count):
            p = float(model.raw(row.reshape(1, -1).astype(np.float32))[0])
            if abs(p - threshold) < THRESHOLD_MARGIN:
                continue
        rows.append(row)
    return np.asarray(rows)


def config_text(name, release, model_type, facts, options, instance_kind):
    """config.pbtxt for the release (its parameter names), GPU or CPU instances."""
    pset = releases.parameter_set(release)
    classifier = facts["task"] != "regressor"
    predict_proba = classifier and options["predict_proba"]
    out_dims = facts["num_classes"] if predict_proba else 1
    params = [("model_type", model_type), (pset["classifier_key"], "true" if classifier else "false")]
    if classifier:
        params += [("predict_proba", "true" if predict_proba else "false"), ("threshold", repr(float(options["threshold"])))]
    header = [f"# Written by rapids.triton_fil.fil_model for Triton {release['tag']} (FIL parameter set "
              f"{release['parameter_set']}) from {os.path.basename(options['model_file'])}",
              f"# ({facts['framework']} {facts.get('estimator') or facts.get('objective') or facts['task']}, "
              f"{facts['num_features']} features" + (f", {facts['num_classes']} classes" if classifier else "") + ")."]
    if instance_kind == "KIND_CPU":
        header.append("# CPU instances for the local stack (tritonserver --model-config-name=cpu); otherwise equal to "
                      "../config.pbtxt.")
    lines = header + [
        f'name: "{name}"',
        'backend: "fil"',
        f"max_batch_size: {int(options['max_batch_size'])}",
        "input [", "  {", '    name: "input__0"', "    data_type: TYPE_FP32", f"    dims: [ {facts['num_features']} ]",
        "  }", "]",
        "output [", "  {", '    name: "output__0"', "    data_type: TYPE_FP32", f"    dims: [ {out_dims} ]", "  }", "]",
        "instance_group [", "  {", f"    count: {int(options['instance_count'])}", f"    kind: {instance_kind}", "  }", "]",
        "parameters [",
    ]
    for i, (key, value) in enumerate(params):
        lines += ["  {", f'    key: "{key}"', f'    value: {{ string_value: "{value}" }}',
                  "  }," if i < len(params) - 1 else "  }"]
    lines.append("]")
    if options["dynamic_batching"]:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {int(options['max_queue_delay_microseconds'])}",
                  "}"]
    return "\n".join(lines) + "\n"


def reference_text(reference):
    """JSON with one line per data row, so diffs of the reference stay readable."""
    text = json.dumps(reference, indent=1)
    for tensors in (reference["inputs"], reference["outputs"]):
        for tensor in tensors.values():
            for row in tensor["data"]:
                text = text.replace(json.dumps(row, indent=1).replace("\n", "\n" + " " * 4), json.dumps(row), 1)
    return text + "\n"


def _output_format(model, release, requested):
    """(model_type, bytes, advisories) of the file to serve."""
    fmt = model.format
    advisories = []
    if fmt == "sklearn":
        if requested == "native":
            raise FilModelError("output_format: native: the FIL backend cannot load pickles; use auto (a Treelite "
                                "checkpoint)")
        return "treelite_checkpoint", bytes(model.treelite_model.serialize_bytes()), advisories
    native_problems, native_advisories = releases.model_file_findings(
        release, fmt, {"xgboost_version": model.facts.get("xgboost_version")})
    if requested == "treelite_checkpoint" or (requested == "auto" and native_problems):
        if fmt == "treelite_checkpoint":
            return fmt, model.data, native_advisories
        treelite_model = model.treelite_model
        if treelite_model is None:
            treelite = _lib("treelite")
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, FIL_MODEL_FILES[fmt])
                with open(path, "wb") as handle:
                    handle.write(model.data)
                if fmt == "lightgbm":
                    treelite_model = treelite.frontend.load_lightgbm_model(path)
                else:
                    treelite_model = treelite.frontend.load_xgboost_model(
                        path, format_choice="ubjson" if fmt == "xgboost_ubj" else "json")
        if native_problems:
            written = ".".join(map(str, model.facts.get("xgboost_version") or ()))
            advisories.append(f"{os.path.basename(model.path)} converted to a Treelite checkpoint: Triton {release['tag']}'s "
                              f"Treelite {release['treelite']} cannot parse files of XGBoost {written} (3.1 and later); "
                              "the checkpoint reproduced XGBoost's predictions")
        return "treelite_checkpoint", bytes(treelite_model.serialize_bytes()), advisories
    if native_problems:
        raise FilModelError(f"output_format: native: Triton {release['tag']} cannot load this file: {native_problems[0]}"
                            " — use output_format: auto")
    return fmt, model.data, native_advisories


def _read_model_file(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise FilModelError(f"model_file: cannot read {path}: {exc}") from None
    if not data:
        raise FilModelError(f"model_file: {path} is empty")
    return data


def _check_outputs(facts, threshold, predict_proba):
    """The output options the model can serve: a threshold in 0..1, probabilities only where it predicts them."""
    if not 0.0 <= threshold <= 1.0:
        raise FilModelError(f"threshold: {threshold} is outside 0..1")
    if facts.get("objective") == "multi:softmax" and predict_proba:
        raise FilModelError("predict_proba: a multi:softmax XGBoost model predicts labels only; retrain with "
                            "multi:softprob for probabilities, or set predict_proba: false")


def _check_checkpoint(model_bytes, release):
    """A treelite checkpoint about to be written must be one the release loads (its header read back)."""
    with tempfile.TemporaryDirectory() as tmp:
        tl_path = os.path.join(tmp, "checkpoint.tl")
        with open(tl_path, "wb") as handle:
            handle.write(model_bytes)
        ckpt = model_files.read_model_facts(tl_path, "treelite_checkpoint")
    problems = releases.model_file_findings(release, "treelite_checkpoint", ckpt)[0]  # advisories: validate_plan
    if problems:
        raise FilModelError(f"model_file: {problems[0]}")


def _predictions(model, options, data, threshold, predict_proba):
    """(rows, float32 inputs, expected outputs) of the reference: given rows, or drawn from the model's features."""
    np = _lib("numpy")
    facts = model.facts
    if options.get("reference_data"):
        rows = _read_rows(options["reference_data"], facts["num_features"])
    else:
        seed = int(hashlib.sha256(data).hexdigest()[:16], 16)
        rows = reference_rows(model, int(options["reference_rows"]), seed, threshold, predict_proba)
    inputs = rows.astype(np.float32)
    if facts.get("objective") == "multi:softmax":
        expected = model.labels_only(inputs).reshape(-1, 1)
    else:
        expected = fil_output(model, model.raw(inputs), predict_proba, threshold)
    return rows, inputs, expected


def _repository_files(options, release, model_type, facts, model_bytes):
    """{relpath: bytes}: config.pbtxt, the model file in its version folder and, if asked, configs/cpu.pbtxt."""
    name = options["name"]
    version = str(int(options["version"]))
    files = {
        f"{name}/config.pbtxt": config_text(name, release, model_type, facts, options, "KIND_GPU").encode(),
        f"{name}/{version}/{FIL_MODEL_FILES[model_type]}": model_bytes,
    }
    if options["cpu_variant"]:
        files[f"{name}/configs/cpu.pbtxt"] = config_text(name, release, model_type, facts, options, "KIND_CPU").encode()
    return files


def _reference(options, release, model, data, fmt, rows, inputs, expected):
    """The reference document triton_verify checks the served model against."""
    np = _lib("numpy")
    facts, path = model.facts, options["model_file"]
    reference = {
        "model": options["name"],
        "description": (f"{facts['framework']} predictions for {len(rows)} rows; written by rapids.triton_fil.fil_model "
                        f"from {os.path.basename(path)}"),
        "atol": float(options["atol"]),
        "rtol": float(options["rtol"]),
        "release": release["tag"],
        "source": {"file": os.path.basename(path), "sha256": hashlib.sha256(data).hexdigest(), "format": fmt},
        "predicted_by": facts.get("predicted_by") or f"{facts['framework']} {model.framework_version}",
        "inputs": {"input__0": {"datatype": "FP32", "shape": list(inputs.shape), "data": rows.tolist()}},
        "outputs": {"output__0": {"datatype": "FP32", "shape": list(expected.shape),
                                  "data": np.round(expected, 7).tolist()}},
    }
    if facts.get("estimator") and facts["task"] != "regressor":
        reference["classes"] = [c.item() if hasattr(c, "item") else c for c in model.estimator.classes_]
    return reference


def plan(options):
    """Everything fil_model would write: {'files': {relpath: bytes}, 'model': facts, 'advisories': [...], ...}."""
    path = options["model_file"]
    data = _read_model_file(path)
    try:
        release, advisories = releases.resolve(release=options.get("release"), image=options.get("image"))
    except releases.ReleaseError as exc:
        raise FilModelError(str(exc)) from None
    fmt = options["model_format"]
    fmt = detect_format(path, data) if fmt == "auto" else fmt
    model = _Model(path, data, fmt)
    facts = model.facts
    predict_proba = bool(facts["task"] != "regressor" and options["predict_proba"])
    threshold = float(options["threshold"])
    _check_outputs(facts, threshold, predict_proba)

    model_type, model_bytes, format_advisories = _output_format(model, release, options["output_format"])
    advisories += format_advisories
    if model_type == "treelite_checkpoint":
        _check_checkpoint(model_bytes, release)
    rows, inputs, expected = _predictions(model, options, data, threshold, predict_proba)
    if model_type == "treelite_checkpoint" and model.format != "treelite_checkpoint":
        _check_conversion(model_bytes, model, inputs, expected, predict_proba, threshold, options)

    summary = {k: (list(v) if isinstance(v, tuple) else v) for k, v in facts.items() if v is not None}
    summary.update(model_type=model_type, model_file=FIL_MODEL_FILES[model_type], source_format=fmt,
                   predict_proba=predict_proba, framework_version=model.framework_version)
    summary.pop("treelite_num_class", None)
    reference = _reference(options, release, model, data, fmt, rows, inputs, expected)
    return {"files": _repository_files(options, release, model_type, facts, model_bytes),
            "reference": reference_text(reference).encode(), "model": summary,
            "release": release, "advisories": advisories}


def _read_rows(path, features):
    np = _lib("numpy")
    try:
        rows = np.load(path) if path.endswith(".npy") else np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as exc:
        raise FilModelError(f"reference_data: cannot read {path}: {exc}") from None
    rows = np.round(np.asarray(rows, dtype=np.float64).reshape(-1, rows.shape[-1]), 4)
    if rows.shape[1] != features:
        raise FilModelError(f"reference_data: {path} has {rows.shape[1]} columns but the model takes {features} features")
    return rows


def _check_conversion(model_bytes, model, inputs, expected, predict_proba, threshold, options):
    """A converted checkpoint must predict what the framework predicts, before it is written."""
    np = _lib("numpy")
    treelite = _lib("treelite")
    converted = treelite.Model.deserialize_bytes(model_bytes)
    got = fil_output(model, gtil(converted, inputs), predict_proba, threshold)
    if got.shape != expected.shape or not np.allclose(got, expected, atol=float(options["atol"]), rtol=float(options["rtol"])):
        raise FilModelError("output_format: the Treelite checkpoint converted from the model does not reproduce the "
                            f"{model.facts['framework']} predictions; keep output_format: native and deploy a newer release")


def existing(dest, relpath):
    try:
        with open(os.path.join(dest, relpath), "rb") as handle:
            return handle.read()
    except OSError:
        return None


def changes(result, dest, reference_path):
    """[(absolute path, relative label, new bytes, old bytes or None)] of the files that differ."""
    out = []
    for relpath, data in sorted(result["files"].items()):
        old = existing(dest, relpath)
        if old != data:
            out.append((os.path.join(dest, relpath), relpath, data, old))
    old = existing("", reference_path)
    if old != result["reference"]:
        out.append((reference_path, os.path.relpath(reference_path, dest), result["reference"], old))
    return out


def write(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".fil_model-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def describe(data):
    """Diff text of a file: itself when it is text, a one-line summary when it is binary."""
    if data is None:
        return ""
    try:
        text = data.decode("utf-8")
        if "\x00" not in text and len(text) < 200_000:
            return text
    except UnicodeDecodeError:
        pass
    return f"<binary, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}>\n"


def validate_plan(result, name):
    """Problems triton_model_repository would report for the planned model folder (checked before writing)."""
    from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (  # pylint: disable=import-outside-toplevel
        validate_model,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for relpath, data in result["files"].items():
            write(os.path.join(tmp, relpath), data)
        model, problems, warnings = validate_model(tmp, name, result["release"])
    if model:
        model.pop("path", None)
    return model, problems, warnings


def stale_files(dest, name, version, model_file):
    """Other FIL model files left in the version folder (they would be uploaded too); reported, never deleted."""
    folder = os.path.join(dest, name, str(int(version)))
    return sorted(f for f in FIL_MODEL_FILES.values() if f != model_file and os.path.isfile(os.path.join(folder, f)))


def check_params(params):
    """The module's input checks, before anything is read: counts at least 1, the name a plain folder name."""
    problems = [f"{key}: {params[key]} must be at least 1"
                for key in ("version", "max_batch_size", "instance_count", "reference_rows") if params[key] < 1]
    if "/" in params["name"] or params["name"] in ("", ".", ".."):
        problems.append(f"name: {params['name']!r} must be a plain folder name")
    return problems


def run(options, check_mode):
    """The module's whole flow: plan, validate, compare, write what differs. Returns the module result."""
    result = plan(options)
    name, dest = options["name"], options["dest"]
    model, problems, warnings = validate_plan(result, name)
    if problems:
        raise FilModelError("the model folder fil_model planned does not validate (nothing was written):\n- "
                            + "\n- ".join(problems))
    reference_path = options.get("reference_file") or os.path.join(dest, f"{name}_reference.json")
    pending = changes(result, dest, reference_path)
    if not check_mode:
        for path, _label, data, _old in pending:
            write(path, data)
    advisories = result["advisories"] + warnings
    stale = stale_files(dest, name, options["version"], result["model"]["model_file"])
    if stale:
        advisories.append(f"{name}/{int(options['version'])}/: {', '.join(stale)} left from another format; the "
                          f"configuration reads {result['model']['model_file']} — delete the others")
    diff = [{"before_header": label, "after_header": label, "before": describe(old), "after": describe(data)}
            for _path, label, data, old in pending]
    files = [{"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
              "changed": any(label == rel for _p, label, _d, _o in pending)}
             for rel, data in sorted(result["files"].items())]
    from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (  # pylint: disable=import-outside-toplevel
        release_summary,
    )
    model = dict(model or {}, path=os.path.join(dest, name))
    return {"changed": bool(pending), "model": dict(result["model"], name=name, path=os.path.join(dest, name)),
            "config": model, "files": files, "reference_file": reference_path,
            "release": release_summary(result["release"]), "advisories": advisories, "diff": diff}
