"""LOCAL CPU STAND-IN for NVIDIA's FIL backend — for the local test stack only, never for production.

Triton loads "Python-based backends" from <backend-directory>/<name>/model.py, so this file,
installed as <backend-directory>/fil/model.py by local_stack/backend_dir.py, serves every
model whose config.pbtxt says `backend: "fil"`. It honours the FIL backend's contract so that the
same model_repository/ bytes load unchanged here and under the real backend on GKE:

* the model file is chosen by the `model_type` parameter (or `default_model_filename`):
  xgboost → xgboost.model, xgboost_json → xgboost.json, xgboost_ubj → xgboost.ubj,
  lightgbm → model.txt, treelite_checkpoint → checkpoint.tl;
* one FP32 input `input__0` [batch, features] and one FP32 output `output__0`;
* both parameter sets the backend has had: `is_classifier` (25.09 and later) or `output_class`
  (24.10-25.08; the 25.09+ backend still honours it, and lets it win over is_classifier, see
  fil_backend src/shared_state.h at e15438b); one of them is required, as in the real backend
  ("Required parameter is_classifier not found in config"). The log line says which set it saw.
  Performance parameters of either set (layout, chunk_size, algo, storage_type, ...) do not change
  results and are ignored here;
* classifier false: the model's (transformed) prediction per row;
  classifier true: class labels compared against `threshold` (binary) or argmax (multi-class),
  or with `predict_proba` true the probability of every class (binary: [1 - p, p]).

XGBoost JSON/UBJSON files predict through xgboost; LightGBM, legacy XGBoost binaries and
treelite checkpoints through treelite's GTIL, all on CPU. The GPU backend computes in float32, this one in float64 then casts: results
agree within the tolerance the verify role uses, not bit for bit.
"""

from __future__ import annotations

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils  # pylint: disable=import-error

MODEL_FILES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
TRUE = ("true", "1", "yes")


def _parameter(config: dict, key: str, default: str | None = None) -> str | None:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return default if value in (None, "") else value


class _XGBoostPredictor:
    def __init__(self, path: str, model_type: str):
        import xgboost as xgb  # pylint: disable=import-outside-toplevel

        self._xgb = xgb
        self.booster = xgb.Booster(params={"nthread": 1})
        self.booster.load_model(path)
        self.num_features = self.booster.num_features()
        self.kind = model_type

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(batch), dtype=np.float64)


class _TreelitePredictor:
    def __init__(self, path: str, model_type: str):
        import treelite  # pylint: disable=import-outside-toplevel

        self._gtil = treelite.gtil
        if model_type == "lightgbm":
            self.model = treelite.frontend.load_lightgbm_model(path)
        elif model_type == "xgboost":
            # Legacy binary: read by Treelite, as the real backend does (src/tl_utils.h); XGBoost >= 3.1
            # cannot read the format at all.
            self.model = treelite.frontend.load_xgboost_model_legacy_binary(path)
        else:
            self.model = treelite.Model.deserialize(path)
        self.num_features = self.model.num_feature
        self.kind = model_type

    def predict(self, batch: np.ndarray) -> np.ndarray:
        # GTIL returns [rows, targets, classes]; a single-target model is what FIL serves.
        out = np.asarray(self._gtil.predict(self.model, batch), dtype=np.float64)
        out = out.reshape(out.shape[0], -1)
        return out[:, 0] if out.shape[1] == 1 else out


class TritonPythonModel:
    """Triton's Python backend entry point (see the module docstring)."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.name = config["name"]
        model_type = _parameter(config, "model_type", "xgboost")
        if model_type not in MODEL_FILES:
            raise pb_utils.TritonModelException(
                f"model '{self.name}': parameters.model_type '{model_type}' is not one of {sorted(MODEL_FILES)}")
        filename = config.get("default_model_filename") or MODEL_FILES[model_type]
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(
                f"model '{self.name}': model_type '{model_type}' needs {filename} in version "
                f"{args['model_version']}, not found at {path}")
        predictor_class = (_TreelitePredictor if model_type in ("lightgbm", "treelite_checkpoint", "xgboost")
                           else _XGBoostPredictor)
        self.predictor = predictor_class(path, model_type)
        legacy = _parameter(config, "output_class")
        current = _parameter(config, "is_classifier")
        if legacy is None and current is None:
            raise pb_utils.TritonModelException(
                f"model '{self.name}': Required parameter is_classifier not found in config "
                "(output_class before FIL 25.09)")
        if legacy is not None:
            self.parameter_set = "24.10-25.08 (output_class)" if current is None else \
                "mixed (output_class wins over is_classifier, as in FIL 25.09+)"
            self.output_class = legacy.lower() in TRUE
        else:
            self.parameter_set = "25.09+ (is_classifier)"
            self.output_class = current.lower() in TRUE
        self.predict_proba = _parameter(config, "predict_proba", "false").lower() in TRUE
        self.threshold = float(_parameter(config, "threshold", "0.5"))
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.output_width = int(np.prod(config["output"][0].get("dims", [1]) or [1]))
        declared = int(config["input"][0]["dims"][-1])
        if self.predictor.num_features and declared != self.predictor.num_features:
            raise pb_utils.TritonModelException(
                f"model '{self.name}': input {self.input_name} declares {declared} features but "
                f"{filename} was trained on {self.predictor.num_features}")
        pb_utils.Logger.log_warn(
            f"fil (LOCAL CPU STAND-IN, not NVIDIA FIL; local testing only): model '{self.name}' "
            f"loaded {filename} as {model_type} with {self.predictor.num_features} features, "
            f"parameter set {self.parameter_set}: classifier={self.output_class} "
            f"predict_proba={self.predict_proba} threshold={self.threshold}")

    def _postprocess(self, raw: np.ndarray) -> np.ndarray:
        if not self.output_class:
            return raw.reshape(raw.shape[0], -1)
        if raw.ndim == 1:  # binary classifier: probability of class 1
            if self.predict_proba:
                return np.stack([1.0 - raw, raw], axis=1)
            return (raw > self.threshold).astype(np.float64).reshape(-1, 1)
        if self.predict_proba:
            return raw
        return np.argmax(raw, axis=1).astype(np.float64).reshape(-1, 1)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                batch = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
                out = self._postprocess(self.predictor.predict(np.ascontiguousarray(batch, dtype=np.float32)))
                out = out.reshape(out.shape[0], -1)
                if out.shape[1] != self.output_width:
                    raise ValueError(
                        f"model '{self.name}' produces {out.shape[1]} values per row but {self.output_name} "
                        f"declares {self.output_width}; check output_class/predict_proba and the output dims")
                tensor = pb_utils.Tensor(self.output_name, out.astype(np.float32))
                responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            except Exception as exc:  # pylint: disable=broad-except
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def finalize(self):
        self.predictor = None
