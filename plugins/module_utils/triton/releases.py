# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The Triton/FIL release matrix: NGC tag -> Triton version -> FIL parameter set -> model formats.

Every fact below was read from the release branches (rYY.MM) of
triton-inference-server/server and triton-inference-server/fil_backend, at the commit recorded next
to it; docs/fil_releases.md says how each column was read and how to extend the table when NVIDIA
ships a release. The table is Python, not a data file, because Ansible ships module_utils Python to
the managed host and nothing else.

- ``server_commit``: head of server rYY.MM; ``TRITON_VERSION`` there gives the Triton version, and
  build.py's --backend help says a release build takes each backend from the branch of the same
  name, so NGC's tritonserver:YY.MM-py3 serves fil_backend rYY.MM.
- ``fil_commit``: head of fil_backend rYY.MM. ``src/shared_state.h`` there lists the parameters the
  backend reads (name, C++ type, default; no default = required, rapids-triton's
  get_config_param throws "Required parameter ... not found in config").
- ``treelite``: the version pinned in ``cmake/thirdparty/get_treelite.cmake`` at that commit; the
  model loaders (XGBoost JSON/UBJSON/legacy, LightGBM, checkpoints) are Treelite's.
"""

from __future__ import annotations

import re

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError

SERVER_REPO = "https://github.com/triton-inference-server/server"
FIL_REPO = "https://github.com/triton-inference-server/fil_backend"

# tag, Triton version, server rYY.MM commit, fil_backend rYY.MM commit, Treelite, parameter set, GPU engine
_RELEASES = (
    ("24.10", "2.51.0", "e0f0734d61c789535ac58c22b79d67eabc5d7477", "87e48ba41604cd74c986de33a7c45359fede6f51", "4.3.0"),
    ("24.11", "2.52.0", "5815d218664f277e866146fb05ef0cd9913883d4", "9f0bb85e008cd46f2316f01d69deda2ffbdc120d", "4.4.0"),
    ("24.12", "2.53.0", "1344e8f410122b2621c79dc7356a8b5f8c8fa353", "478283f0c856325472d9438babb33e42ed1bfe63", "4.4.0"),
    ("25.01", "2.54.0", "23b9c72e89967d1af7a67284a00601ee35f81d11", "25d54b37564c73671fccde802acb184d3b0f989c", "4.4.1"),
    ("25.02", "2.55.0", "9a01bb0934abdfe6fe42e07f21ea02a1d962b750", "a1cf9c62af468cd0e5ae60216c3cf51e701d5135", "4.4.1"),
    ("25.03", "2.56.0", "4c8e1e2bc87f140931eade8e1b399c20cc75ba1a", "a764a003acf7eb911c323c8f613a4f8190d6f0f7", "4.4.1"),
    ("25.04", "2.57.0", "d79c4f11ed08572571b2eac99e0dac268e38cf9b", "989a0b9d0e6e55d2c9be93a6ab7d9c39c4d98501", "4.4.1"),
    ("25.05", "2.58.0", "af417a8ae7457c17ebb44ecda204367f00d11ced", "74394b8cfb14a662f61bd3dd55d20e229bae89ca", "4.4.1"),
    ("25.06", "2.59.0", "624ac90d2f018de0233ae00af47551e37293d211", "c2fa763d472712737815646ba508d9fa3663ba4a", "4.4.1"),
    ("25.07", "2.59.1", "c31f6e5cd11cf7ce105b9de280d2ef7c84d12531", "f0bea8f539a8f9bf69cad94869ce72bb132afbac", "4.4.1"),
    ("25.08", "2.60.0", "15f492ed986c4a875364ac95a1433526a0f92cbe", "0a141b1c36522b2decfac9ad67f6960bb8e8681b", "4.4.1"),
    ("25.09", "2.61.0", "4c6494236655542466724e7562cee7ec74001409", "e15438b45250f042da6312ea06b530b41177d2e7", "4.4.1"),
    ("25.10", "2.62.0", "dccbf87dd243dd9ea89fb2f59f4a7bd19d1b70e5", "3876644f3b7d38d2b5d31c90ed1aefe5b60516c0", "4.4.1"),
    ("25.11", "2.63.0", "f30b53f554bfcf5d4792b744db9292eec695e5f9", "76f2f53fdecf1e62d4002a4db77e8bd5fecbf437", "4.4.1"),
    ("25.12", "2.64.0", "f6d01881f53a23541fec034e68a9e4b2a744e319", "c4f211adfdcd13b51b78ab5a6a4d9ac930272592", "4.4.1"),
    ("26.01", "2.65.0", "91c61c5d942dd6bc245a9324e0b2966d5c2a877d", "ddfd3e0431176fc9e039d00ee297fe965c7de109", "4.6.1"),
    ("26.02", "2.66.0", "cbaea23e00567ff7b6cf442cc24be8e460c9c5fd", "6f07be3daec784b9e6dbbdfa67b22316a3ea53a6", "4.6.1"),
    ("26.03", "2.67.0", "f72de0733e63cb7ada8bd374930de1a86ba9fe6b", "5556c0ea662a81fa01bf1f91bec3aae7acb1381c", "4.6.1"),
    ("26.04", "2.68.0", "dd16c0cad0399599240e8eb37178865eca994303", "023d8d884c67ef669e95e8fadbc89d278ec70b39", "4.6.1"),
    ("26.05", "2.69.0", "34ca83e780bff7829b33d922fa9d16a0628e050c", "f02631b4660868112ee1a40bd0e4492ca20da026", "4.6.1"),
    ("26.06", "2.70.0", "690f9dd2c16901f1b63d43e73d29f2a623d64c55", "d71f8ef1648027c6e0514d45f1969751684528b5", "4.7.0"),
)
# Server branches newer than any fil_backend branch in the sources read (fil_backend's newest
# branch and main were both at d71f8ef, r26.06): their Triton version is known, their FIL facts
# are not. A tag here is validated against the newest covered release, with an advisory.
_SERVER_ONLY = (
    ("26.07", "2.71.0", "819ee37770df2fcd6d799d2a5d1dacf812f7d62c"),
    ("26.08", "2.72.0", "6fa22ae028e60f03170a8a07ebc8a54587c8581d"),
)

# The parameter set changed once in these releases: fil_backend e15438b (r25.09, "Provide
# version bumps for 25.09", #438) rewrote src/shared_state.h and docs/model_config.md.
PARAMETER_SET_CHANGES = (("24.10", "24.10"), ("25.09", "25.09"))
# 26.06 (fil_backend d71f8ef) moved GPU inference from cuML FIL to nvForest (src/fil_config.h ->
# src/nvforest_config.h), with the same parameters.
GPU_ENGINE_CHANGES = (("24.10", "cuML FIL"), ("26.06", "nvForest"))

_MODEL_TYPES = ("xgboost", "xgboost_json", "xgboost_ubj", "lightgbm", "treelite_checkpoint")


def _parameters(classifier_key, gpu_parameters):
    """One set's table: the parameters both sets read, in the order docs/model_config.md lists
    them, with the set's classifier key and its GPU (cuML FIL / nvForest) parameters."""
    return {
        "model_type": {"type": "choice", "choices": _MODEL_TYPES, "default": "xgboost"},
        classifier_key: {"type": "bool", "required": True},
        "predict_proba": {"type": "bool", "default": "false"},
        "threshold": {"type": "float", "required": "classifier"},
        "xgboost_allow_unknown_field": {"type": "bool", "default": "false"},
        "transfer_threshold": {"type": "size", "default": "0", "gpu_only": True},
        **gpu_parameters,
        "cpu_nthread": {"type": "int", "default": "-1"},
        "use_experimental_optimizations": {"type": "bool", "default": "false"},
    }


# name -> spec. type: bool ("true"/"false" only: rapids-triton get_config_param), int, float,
# size (unsigned), choice. required: True, or "classifier" (read without a default only when the
# model is a classifier). Source: src/shared_state.h (and src/fil_config.h / nvforest_config.h
# for the allowed layout/algo/storage_type names) at the fil_commit of the first release of the set.
PARAMETER_SETS = {
    "24.10": {
        "source": "fil_backend 87e48ba (r24.10) src/shared_state.h, src/fil_config.h, docs/model_config.md",
        "classifier_key": "output_class",
        "parameters": _parameters("output_class", {
            "algo": {"type": "choice", "choices": ("ALGO_AUTO", "NAIVE", "TREE_REORG", "BATCH_TREE_REORG"),
                     "default": "ALGO_AUTO", "gpu_only": True},
            "storage_type": {"type": "choice", "choices": ("AUTO", "DENSE", "SPARSE", "SPARSE8"), "default": "AUTO",
                             "gpu_only": True},
            "blocks_per_sm": {"type": "int", "default": "0", "gpu_only": True},
            "threads_per_tree": {"type": "int", "default": "1", "gpu_only": True},
        }),
        # Parameters of the newer set this release does not read: the backend ignores them, so
        # the older name must be given (output_class is required here).
        "unknown_newer": {"is_classifier": ("25.09", "output_class"), "layout": ("25.09", "algo"),
                          "chunk_size": ("25.09", "threads_per_tree")},
        "removed": {},
        "deprecated": {},
    },
    "25.09": {
        "source": "fil_backend e15438b (r25.09) src/shared_state.h, src/fil_config.h, src/tl_model.h, docs/model_config.md",
        "classifier_key": "is_classifier",
        "parameters": _parameters("is_classifier", {
            # "layered_children_together" is accepted as a synonym of "layered" (name_to_fil_layout).
            "layout": {"type": "choice", "choices": ("depth_first", "breadth_first", "layered",
                                                     "layered_children_together"),
                       "default": "depth_first", "gpu_only": True},
            # docs/model_config.md: "chunk_size can be any power of 2 between 1 and 32".
            "chunk_size": {"type": "int", "default": "1", "gpu_only": True, "powers_of_two": (1, 32)},
        }),
        "unknown_newer": {},
        # src/shared_state.h logs "The `X` parameter has been removed in 25.09 release. Use `Y`
        # instead." and ignores the value, except output_class, whose value is still honoured.
        "removed": {
            "output_class": {"replacement": "is_classifier", "value_kept_by_backend": True},
            "algo": {"replacement": "layout"},
            "threads_per_tree": {"replacement": "chunk_size"},
            "storage_type": {"replacement": None},
            "blocks_per_sm": {"replacement": None},
        },
        # src/tl_model.h: "use_experimental_optimizations option is deprecated. It will be removed
        # in the 25.10 release." -- still read through r26.06 (d71f8ef).
        "deprecated": {"use_experimental_optimizations": "deprecated since 25.09 (src/tl_model.h warns it will be "
                                                         "removed); it only affects CPU instances"},
    },
}

# What a release's Treelite loads (model_support.md at each fil_commit, and loads run here with
# the PyPI wheels of the same Treelite versions; docs/fil_releases.md lists them).
#  - XGBoost >= 3.1 writes a "cats" object and a vector base_score ("[5E-1]") into JSON and
#    UBJSON; Treelite before 4.6 stops at 'key "cats" is not recognized' (and, with
#    allow_unknown_field, at the base_score: "stof"). dmlc/treelite#638 ("Support XGBoost 3.1",
#    merged 2025-10-31) added both; 4.6.1 and 4.7.0 load XGBoost 3.1.0 and 3.2.0 files.
#  - XGBoost 3.1 removed the legacy binary format (xgboost: "The binary format has been deprecated
#    in 1.6 and removed in 3.1"); FIL still loads it (src/tl_utils.h LoadXGBoostModelLegacyBinary
#    through r26.06) but docs/model_support.md stopped listing it at 25.09 (e15438b).
#  - Treelite checkpoints: same major version required; a newer minor loads with the warning
#    "originated from a newer Treelite version" (src/serializer.cc; 4.3.0 loads a 4.8.1 checkpoint).
XGBOOST_UNREADABLE_FROM = {"4.3.0": (3, 1), "4.4.0": (3, 1), "4.4.1": (3, 1)}
UBJSON_FROM = "24.10"   # model_support.md: "24.10+ ... XGBoost UBJSON 2.1+"
LEGACY_BINARY_UNDOCUMENTED_FROM = "25.09"


def _key(tag):
    year, month = tag.split(".")
    return int(year), int(month)


def _in_force(changes, tag):
    """The value of the last change at or before tag (changes: (first tag, value), oldest first)."""
    value = None
    for first, changed_to in changes:
        if _key(tag) >= _key(first):
            value = changed_to
    return value


def _build():
    table = {}
    for tag, triton, server_commit, fil_commit, treelite in _RELEASES:
        table[tag] = {
            "tag": tag, "image_tag": f"{tag}-py3", "triton_version": triton,
            "server_branch": f"r{tag}", "server_commit": server_commit,
            "fil_branch": f"r{tag}", "fil_commit": fil_commit,
            "treelite": treelite, "parameter_set": _in_force(PARAMETER_SET_CHANGES, tag),
            "gpu_engine": _in_force(GPU_ENGINE_CHANGES, tag),
            "covered": True,
        }
    return table


RELEASES = _build()
SERVER_ONLY = {tag: {"tag": tag, "image_tag": f"{tag}-py3", "triton_version": triton, "server_branch": f"r{tag}",
                     "server_commit": commit, "covered": False} for tag, triton, commit in _SERVER_ONLY}
NEWEST = max(RELEASES, key=_key)
OLDEST = min(RELEASES, key=_key)
# The release the collection deploys by default (roles/gcr_image: tritonserver:<NEWEST>-py3).
DEFAULT_RELEASE = NEWEST

_TAG_RE = re.compile(r"^(\d{2})\.(\d{2})(?:[-.].*)?$")


class ReleaseError(TritonFilError, ValueError):
    """A release or image tag the matrix cannot place."""


def tag_of_image(image):
    """'nvcr.io/nvidia/tritonserver:26.06-py3' -> '26.06' (None if the tag says no release)."""
    if not image:
        return None
    ref = str(image).split("@", 1)[0]
    tail = ref.rsplit("/", 1)[-1]
    tag = tail.split(":", 1)[1] if ":" in tail else (ref if "/" not in ref and ":" not in ref else "")
    match = _TAG_RE.match(tag)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def resolve(release=None, image=None):
    """(release facts, advisories) for an explicit release ('26.06', '26.06-py3') or an image reference.

    Raises ReleaseError when the release given is outside the matrix; a tag that names no release
    (e.g. 'latest') or a release newer than the FIL facts gives the newest covered release and an advisory.
    """
    advisories = []
    if release:
        tag = tag_of_image(f"x:{release}") or ""
        if not tag:
            raise ReleaseError(f"release: {release!r} is not an NGC release tag such as {NEWEST!r} "
                               f"(covered: {OLDEST} to {NEWEST})")
        origin = f"release {release}"
    else:
        tag = tag_of_image(image)
        if tag is None:
            if image:
                advisories.append(f"image {image!r}: its tag names no NGC release (YY.MM-py3); validating against "
                                  f"{DEFAULT_RELEASE} (set release: to the release the image serves)")
            return dict(RELEASES[DEFAULT_RELEASE]), advisories
        origin = f"image {image}"
    if tag in RELEASES:
        return dict(RELEASES[tag]), advisories
    if tag in SERVER_ONLY or _key(tag) > _key(NEWEST):
        known = SERVER_ONLY.get(tag, {})
        facts = dict(RELEASES[NEWEST])
        facts.update(assumed_from=NEWEST, tag=tag, image_tag=f"{tag}-py3", covered=False,
                     triton_version=known.get("triton_version"), server_commit=known.get("server_commit"),
                     server_branch=f"r{tag}", fil_branch=None, fil_commit=None)
        advisories.append(f"{origin}: the release matrix has no FIL backend facts for {tag} (newest: {NEWEST}); "
                          f"validating with {NEWEST}'s parameters and model formats — see docs/fil_releases.md "
                          "to add the release")
        return facts, advisories
    raise ReleaseError(f"{origin}: {tag} is older than the release matrix ({OLDEST} to {NEWEST}); "
                       f"deploy a covered release or pass release: explicitly")


def parameter_set(facts):
    return PARAMETER_SETS[facts["parameter_set"]]


def _version_tuple(text):
    return tuple(int(p) for p in re.findall(r"\d+", str(text))[:3])


def model_file_findings(facts, model_type, file_facts):
    """(problems, advisories) about a model file of model_type for the release in facts.

    file_facts: {'xgboost_version': (3, 2, 0)?, 'treelite_version': (4, 8, 1)?} as read from the file.
    """
    problems, advisories = [], []
    tag, treelite = facts["tag"], facts["treelite"]
    if model_type in ("xgboost_json", "xgboost_ubj"):
        if model_type == "xgboost_ubj" and _key(tag) < _key(UBJSON_FROM):
            problems.append(f"model_type xgboost_ubj: Triton {tag} does not load UBJSON (supported from {UBJSON_FROM}); "
                            "save the model as JSON")
        written = file_facts.get("xgboost_version")
        limit = XGBOOST_UNREADABLE_FROM.get(treelite)
        if written and limit and tuple(written[:2]) >= limit:
            problems.append(
                f"written by XGBoost {'.'.join(map(str, written))}, whose files Triton {tag}'s Treelite {treelite} "
                f"cannot parse (XGBoost >= {limit[0]}.{limit[1]} adds 'cats' and a vector base_score; Treelite reads "
                "them from 4.6); convert it with rapids.triton_fil.fil_model (it writes a Treelite checkpoint for "
                "this release), or deploy 26.01 or newer")
    elif model_type == "xgboost" and _key(tag) >= _key(LEGACY_BINARY_UNDOCUMENTED_FROM):
        advisories.append(f"model_type xgboost (legacy binary): FIL {tag} still loads it but no longer documents it "
                          f"(since {LEGACY_BINARY_UNDOCUMENTED_FROM}); XGBoost 3.1 removed the format — prefer "
                          "xgboost_ubj")
    elif model_type == "treelite_checkpoint":
        written = file_facts.get("treelite_version")
        reader = _version_tuple(treelite)
        # src/serializer.cc (Deserializer): "Cannot load model from a different major Treelite version or a
        # version before 3.9.0"; Treelite 4 reads 3.9 checkpoints through its v3 path.
        v3_compatible = reader[0] == 4 and tuple(written[:2]) == (3, 9) if written else False
        if written and not v3_compatible:
            if written[0] != reader[0]:
                problems.append(f"is not a treelite {reader[0]} checkpoint (header says version "
                                f"{'.'.join(map(str, written))}); Triton {tag} reads checkpoints of Treelite "
                                f"{reader[0]}.x only (Treelite {treelite}{', and 3.9' if reader[0] == 4 else ''}) — "
                                f"serialize the model again with Treelite {reader[0]}.x")
            elif tuple(written[:2]) > tuple(reader[:2]):
                advisories.append(f"checkpoint written by Treelite {'.'.join(map(str, written))}, newer than Triton "
                                  f"{tag}'s {treelite}: it loads, with Treelite's warning that some functionality "
                                  "may be unavailable")
    return problems, advisories


def matrix_rows():
    """The matrix as rows for docs and tests (newest first)."""
    rows = []
    for tag in sorted(RELEASES, key=_key, reverse=True):
        rows.append(RELEASES[tag])
    return rows
