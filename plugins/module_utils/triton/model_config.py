# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Validate a Triton model repository with Triton's own ModelConfig protobuf.

Every config.pbtxt (and configs/<name>.pbtxt variant) is parsed with
``tritonclient.grpc.model_config_pb2.ModelConfig`` through ``google.protobuf.text_format``, so a
field Triton would reject is rejected here, with the file, line and field named. Models served by
the FIL backend get the backend's own rules on top, for the release the deployment serves
(releases.py: the FIL parameter set of that release, the model formats its Treelite loads):
parameter names and values (removed and renamed ones named with their replacement), the model file
that ``model_type`` needs in every version folder (readable, non-empty, parsing as its model_type:
model_files.inspect_model_file), ``input__0``/``output__0`` and, where the model file gives them, the
feature count and number of classes. A configuration must be UTF-8 and at most MAX_CONFIG_BYTES;
unknown FIL parameters fold into one warning per configuration. ``migrate_repository`` rewrites the
parameters to the release's names, editing the text so that comments stay.
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import pbtxt_edit, releases
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_files import FIL_MODEL_FILES, inspect_model_file

try:
    from google.protobuf import text_format
    from google.protobuf.json_format import MessageToDict
    from tritonclient.grpc import model_config_pb2

    HAS_MODEL_CONFIG = True
    MODEL_CONFIG_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_MODEL_CONFIG = False
    MODEL_CONFIG_IMPORT_ERROR = exc

IGNORED_ENTRIES = ("__pycache__",)
# Triton configurations are a few kB; protobuf's text parser needs about a second per MiB and the
# report grows with every key, so a larger file is refused before it is parsed.
MAX_CONFIG_BYTES = 1024 * 1024
UNKNOWN_KEYS_SHOWN = 10


class ModelRepositoryError(TritonFilError):
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


def _check_value(where, key, spec, value, problems):
    kind = spec["type"]
    if kind == "bool" and value not in ("true", "false"):
        problems.append(f"{where}.{key}: {value!r} must be the string \"true\" or \"false\" (the backend rejects "
                        "anything else)")
    elif kind == "choice" and value not in spec["choices"]:
        problems.append(f"{where}.{key}: {value!r} is not one of {', '.join(spec['choices'])}")
    elif kind in ("int", "size"):
        if not re.fullmatch(r"-?\d+" if kind == "int" else r"\d+", value):
            problems.append(f"{where}.{key}: {value!r} must be {'an' if kind == 'int' else 'a non-negative'} integer")
        elif spec.get("powers_of_two"):
            low, high = spec["powers_of_two"]
            number = int(value)
            if not (low <= number <= high and number & (number - 1) == 0):
                problems.append(f"{where}.{key}: {value} must be a power of 2 between {low} and {high}")
    elif kind == "float":
        try:
            number = float(value)
        except ValueError:
            problems.append(f"{where}.{key}: {value!r} is not a number, e.g. \"0.5\"")
            return
        if key == "threshold" and not 0.0 <= number <= 1.0:
            problems.append(f"{where}.{key}: {number} is outside 0..1")


def _parameter_findings(where, params, release, problems, warnings):
    """Check the parameters against the release's set; return (is_classifier, predict_proba)."""
    pset = releases.parameter_set(release)
    spec = pset["parameters"]
    tag = release["tag"]
    unknown = []
    for key in sorted(params):
        if key in spec:
            _check_value(where, key, spec[key], params[key], problems)
        elif key in pset["removed"]:
            removed = pset["removed"][key]
            replacement = removed["replacement"]
            effect = ("still uses its value, with a warning" if removed.get("value_kept_by_backend")
                      else "ignores it, with a warning")
            problems.append(f"{where}.{key}: removed in FIL 25.09 — Triton {tag}'s backend {effect}; "
                            + (f"rename it to {replacement}" if replacement else "delete it")
                            + " (or run triton_model_repository with migrate: true)")
        elif key in pset["unknown_newer"]:
            since, older = pset["unknown_newer"][key]
            problems.append(f"{where}.{key}: introduced in FIL {since}; Triton {tag}'s backend does not read it — "
                            f"use {older} (or run triton_model_repository with migrate: true)")
        else:
            unknown.append(key)
    known = ", ".join(sorted(spec))
    if len(unknown) == 1:
        warnings.append(f"{where}.{unknown[0]}: not a FIL parameter in Triton {tag} (known: {known}); "
                        "the backend ignores it — check the spelling")
    elif unknown:  # one line per configuration, however many keys
        shown = ", ".join(unknown[:UNKNOWN_KEYS_SHOWN])
        more = f" and {len(unknown) - UNKNOWN_KEYS_SHOWN} more" if len(unknown) > UNKNOWN_KEYS_SHOWN else ""
        warnings.append(f"{where}.{unknown[0]}: {len(unknown)} keys the FIL backend does not know and ignores, none "
                        f"a FIL parameter in Triton {tag} ({shown}{more}); known: {known} — check the spelling")
    for key, why in pset["deprecated"].items():
        if key in params:
            warnings.append(f"{where}.{key}: {why}")
    classifier_key = pset["classifier_key"]
    classifier_value = params.get(classifier_key)
    if classifier_value is None:
        # 25.09+ still honours a removed output_class (src/shared_state.h); its problem is reported above.
        classifier_value = params.get("output_class") if "output_class" in pset["removed"] else None
    if classifier_value is None:
        problems.append(f"{where}.{classifier_key}: missing; Triton {tag}'s backend requires it (\"Required parameter "
                        f"{classifier_key} not found in config\") — \"true\" for classifiers, \"false\" for regressors")
    is_classifier = classifier_value == "true"
    if is_classifier and "threshold" not in params:
        problems.append(f"{where}.threshold: missing; the backend reads it without a default when {classifier_key} is "
                        "\"true\" (src/shared_state.h) — set it, e.g. \"0.5\"")
    predict_proba = params.get("predict_proba", "false") == "true"
    if predict_proba and classifier_value is not None and not is_classifier:
        problems.append(f"{where}.predict_proba: \"true\" needs {classifier_key} \"true\" (probabilities are per class)")
    return is_classifier, predict_proba


def _tensor_problems(config_file, config):
    """The FIL backend's one FP32 input__0 and one FP32 output__0, each of one dimension."""
    problems = []
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
    return problems


def _model_file_findings(name, filename, model_type, version_dirs, release):
    """(facts of the first readable model file, problems, warnings) over every version folder."""
    problems, warnings, file_facts = [], [], None
    for version in version_dirs:
        label = f"{name}/{os.path.basename(version)}/{filename}"
        path = os.path.join(version, filename)
        if not os.path.isfile(path):
            problems.append(f"{label}: missing; model_type {model_type!r} reads {filename} from every version folder")
            continue
        problem, this = inspect_model_file(path, model_type)
        if problem:
            problems.append(f"{label}: {problem}")
            continue
        file_problems, file_advisories = releases.model_file_findings(release, model_type, this)
        problems.extend(f"{label}: {p}" for p in file_problems)
        warnings.extend(f"{label}: {a}" for a in file_advisories)
        if file_facts is None:
            file_facts = this
    return file_facts or {}, problems, warnings


def _shape_findings(config_file, config, filename, file_facts, is_classifier, predict_proba):
    """The declared dims against the model file's features and classes: (problems, warnings)."""
    problems, warnings = [], []
    features, classes = file_facts.get("num_features"), file_facts.get("num_classes")
    if features and len(config.input) == 1 and len(config.input[0].dims) == 1:
        declared = int(config.input[0].dims[0])
        if declared not in (features, -1):
            problems.append(f"{config_file}: input {config.input[0].name}.dims: [{declared}] but {filename} "
                            f"has {features} features; set dims: [ {features} ]")
    if file_facts.get("task") == "regressor" and is_classifier:
        warnings.append(f"{config_file}: parameters: {filename} is a regressor ({file_facts.get('objective')}) but "
                        "the configuration says it is a classifier; the backend would threshold its outputs")
    if classes and classes > 1 and is_classifier and len(config.output) == 1 and len(config.output[0].dims) == 1:
        want = classes if predict_proba else 1
        declared = int(config.output[0].dims[0])
        if declared != want:
            problems.append(f"{config_file}: output {config.output[0].name}.dims: [{declared}] but "
                            f"{'predict_proba gives one value per class' if predict_proba else 'class labels are one value per row'}"
                            f" ({classes} classes); set dims: [ {want} ]")
    return problems, warnings


def _fil_rules(name, config_file, config, version_dirs, release):
    """FIL backend rules for the release: (facts (model_type, model_file, num_features, num_classes, task),
    problems, warnings)."""
    params = {key: value.string_value for key, value in config.parameters.items()}
    where = f"{config_file}: parameters"
    problems, warnings = [], []
    model_type = params.get("model_type")
    if model_type is None:
        problems.append(f"{where}.model_type: missing; set it to one of {', '.join(FIL_MODEL_FILES)}")
    elif model_type not in FIL_MODEL_FILES:
        model_type = None
    is_classifier, predict_proba = _parameter_findings(where, params, release, problems, warnings)
    problems.extend(_tensor_problems(config_file, config))

    facts = {"model_type": model_type, "model_file": None, "num_features": None, "num_classes": None, "task": None}
    if model_type is None:
        return facts, problems, warnings
    filename = config.default_model_filename or FIL_MODEL_FILES[model_type]
    file_facts, file_problems, file_warnings = _model_file_findings(name, filename, model_type, version_dirs, release)
    facts.update(model_file=filename, num_features=file_facts.get("num_features"),
                 num_classes=file_facts.get("num_classes"), task=file_facts.get("task"))
    shape_problems, shape_warnings = _shape_findings(config_file, config, filename, file_facts, is_classifier,
                                                     predict_proba)
    return facts, problems + file_problems + shape_problems, warnings + file_warnings + shape_warnings


# Renames between the two parameter sets, for migrate: true (see releases.PARAMETER_SETS).
# algo NAIVE is the breadth-first layout (r24.10 docs/model_config.md: "NAIVE uses a breadth-first
# layout"); the other algo values have no layout counterpart and are dropped (layout then defaults
# to depth_first). threads_per_tree and chunk_size are the pair the 25.09 backend names itself.
def migration_edits(params, release):
    """[(edit, note)] turning params into the parameter set of the release."""
    pset_name = release["parameter_set"]
    edits = []
    if pset_name == "25.09":
        if "output_class" in params:
            if "is_classifier" in params:
                edits.append(({"key": "output_class", "op": "delete"},
                              "output_class removed (is_classifier is set; note the 25.09+ backend let output_class win)"))
            else:
                edits.append(({"key": "output_class", "op": "rename", "new_key": "is_classifier"},
                              "output_class -> is_classifier"))
        if "algo" in params:
            if params["algo"] == "NAIVE" and "layout" not in params:
                edits.append(({"key": "algo", "op": "rename", "new_key": "layout", "new_value": "breadth_first"},
                              "algo NAIVE -> layout breadth_first"))
            else:
                edits.append(({"key": "algo", "op": "delete"},
                              f"algo {params['algo']} removed (no layout equivalent; layout defaults to depth_first)"))
        if "threads_per_tree" in params:
            value = params["threads_per_tree"]
            valid = value.isdigit() and 1 <= int(value) <= 32 and int(value) & (int(value) - 1) == 0
            if valid and "chunk_size" not in params:
                edits.append(({"key": "threads_per_tree", "op": "rename", "new_key": "chunk_size"},
                              "threads_per_tree -> chunk_size (a tuning value: measure again)"))
            else:
                edits.append(({"key": "threads_per_tree", "op": "delete"}, "threads_per_tree removed"))
        for key in ("storage_type", "blocks_per_sm"):
            if key in params:
                edits.append(({"key": key, "op": "delete"}, f"{key} removed (no longer a FIL parameter)"))
    else:
        if "is_classifier" in params:
            if "output_class" in params:
                edits.append(({"key": "is_classifier", "op": "delete"}, "is_classifier removed (output_class is set)"))
            else:
                edits.append(({"key": "is_classifier", "op": "rename", "new_key": "output_class"},
                              "is_classifier -> output_class"))
        if "layout" in params:
            if params["layout"] == "breadth_first" and "algo" not in params:
                edits.append(({"key": "layout", "op": "rename", "new_key": "algo", "new_value": "NAIVE"},
                              "layout breadth_first -> algo NAIVE"))
            else:
                edits.append(({"key": "layout", "op": "delete"}, "layout removed (algo defaults to ALGO_AUTO)"))
        if "chunk_size" in params:
            if "threads_per_tree" not in params and params["chunk_size"].isdigit():
                edits.append(({"key": "chunk_size", "op": "rename", "new_key": "threads_per_tree"},
                              "chunk_size -> threads_per_tree (a tuning value: measure again)"))
            else:
                edits.append(({"key": "chunk_size", "op": "delete"}, "chunk_size removed"))
    return edits


def _expected_after(config, edits):
    """The ModelConfig the edits must produce (to check the text edit)."""
    want = model_config_pb2.ModelConfig()
    want.CopyFrom(config)
    for edit, _note in edits:
        old = want.parameters[edit["key"]].string_value
        del want.parameters[edit["key"]]
        if edit["op"] == "delete":
            continue
        want.parameters[edit.get("new_key") or edit["key"]].string_value = (
            edit["new_value"] if edit.get("new_value") is not None else old)
    return want


def migrate_text(text, release, source="config.pbtxt"):
    """(new text, notes) with the FIL parameters of a config.pbtxt renamed for the release; same text if none apply."""
    config = parse_config_text(text, source)
    if config.backend != "fil":
        return text, []
    params = {key: value.string_value for key, value in config.parameters.items()}
    edits = migration_edits(params, release)
    if not edits:
        return text, []
    want = _expected_after(config, edits)
    notes = [note for _edit, note in edits]
    try:
        new_text = pbtxt_edit.apply(text, [edit for edit, _note in edits])
        if parse_config_text(new_text, source) == want:
            return new_text, notes
    except (pbtxt_edit.PbtxtEditError, ValueError, IndexError):
        pass
    # The in-place edit did not give the intended message: write Triton's canonical text instead.
    return text_format.MessageToString(want), notes + ["rewritten in protobuf's canonical text format (comments dropped)"]


def replace_text_file(path, text):
    """Replace path atomically (a temporary file in the same folder, then rename), keeping its mode."""
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".migrate-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _config_files(model_dir, name):
    """([(label, path)] for config.pbtxt and every configs/*.pbtxt, problems listing configs/)."""
    variants = [("config.pbtxt", os.path.join(model_dir, "config.pbtxt"))]
    configs_dir = os.path.join(model_dir, "configs")
    if not os.path.isdir(configs_dir):
        return variants, []
    try:
        listed = os.listdir(configs_dir)
    except OSError as exc:
        return variants, [f"{name}/configs/: cannot be read ({exc.strerror}) — fix its permissions"]
    return variants + sorted((f"configs/{e}", os.path.join(configs_dir, e)) for e in listed if e.endswith(".pbtxt")), []


def migrate_repository(path, release, models=None):
    """[{'file', 'before', 'after', 'notes'}] for every configuration the release needs rewritten."""
    changes = []
    for name in _model_entries(path, models):
        for label, full in _config_files(os.path.join(path, name), name)[0]:
            if not os.path.isfile(full):
                continue
            before, problem = read_config_text(full)
            if problem:
                continue  # validation reports it
            try:
                after, notes = migrate_text(before, release, f"{name}/{label}")
            except ValueError:
                continue  # validation reports the parse error
            if after != before:
                changes.append({"file": f"{name}/{label}", "path": full, "before": before, "after": after,
                                "notes": notes})
    return changes


def validate_model(root, name, release=None):
    """(model facts, problems, warnings) for the model folder root/name, against the release's FIL rules."""
    release = release or releases.RELEASES[releases.DEFAULT_RELEASE]
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
    variants, listing_problems = _config_files(model_dir, name)
    problems += listing_problems
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
            facts, fil_problems, fil_warnings = _fil_rules(name, config_file, config, version_dirs, release)
            problems.extend(fil_problems)
            warnings.extend(fil_warnings)
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
    # The model file is checked once per configuration variant; say each finding once.
    return model, list(dict.fromkeys(problems)), list(dict.fromkeys(warnings))


def _model_entries(path, models=None):
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
    return select_models(entries, models, path, ModelRepositoryError)


def select_models(entries, models, path, error):
    """entries narrowed to the models asked for (all when none is); error(message) names those not there."""
    if not models:
        return entries
    missing = sorted(set(models) - set(entries))
    if missing:
        raise error(f"models: {', '.join(missing)} not found under {path} (found: {', '.join(entries) or 'nothing'})")
    return [e for e in entries if e in models]


def release_summary(release):
    """The release facts a module returns (what the repository was validated against)."""
    keys = ("tag", "image_tag", "triton_version", "parameter_set", "treelite", "gpu_engine", "server_commit",
            "fil_commit", "covered", "assumed_from")
    return {k: release.get(k) for k in keys if k in release}


def validate_repository(path, models=None, release=None):
    """Validate every model folder under path (or only those named in models) against a release.

    release: facts from releases.resolve() (default: the collection's default release).
    Returns {'path', 'models': [...], 'problems': [...], 'warnings': [...], 'release': {...}}; raises
    ModelRepositoryError when the repository itself is unusable.
    """
    release = release or releases.RELEASES[releases.DEFAULT_RELEASE]
    entries = _model_entries(path, models)
    result = {"path": path, "models": [], "problems": [], "warnings": [], "release": release_summary(release)}
    if not entries:
        result["problems"].append(f"{path}: no model folders; a repository holds <model>/config.pbtxt and "
                                  "<model>/<version>/<model file>")
    for name in entries:
        model, problems, warnings = validate_model(path, name, release)
        if model is not None:
            result["models"].append(model)
        result["problems"] += problems
        result["warnings"] += warnings
    return result
