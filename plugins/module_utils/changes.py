# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""One convention for a module's ``changes`` list and the ``diff`` built from it.

The common shape, used by gcs_bucket, artifact_registry_repository, gke_cluster and gke_node_pool,
is one dict per changed setting: ``{"field": name, "before": old, "after": new}``, built with
``change``; ``diff_of(changes)`` turns such a list into the ``{"before": {...}, "after": {...}}``
that ``--diff`` shows. Extra keys follow the three:

* gke/plan.py plans with ``action`` (the API call that applies it, or ``"recreate"``) and returns
  ``public_changes``: ``{field, before, after, in_place}``;
* a whole resource created or deleted is one change of ``field`` = the resource kind, before/after
  ``"absent"``/``"present"``.

Other shapes exist and are module return values, so they stay as they are for now:

* iam/workload_identity.py: ``{resource, action, ...}`` and ``{resource, role, member, action}``,
  its diff kept separately per resource;
* triton/model_config.py (migrations): ``{file, path, before, after, notes}``, whole file texts;
* triton/rollout.py: per-model summaries ``{model, before, versions, servers, ...}``.
"""

from __future__ import annotations


def change(field, before, after, **extra):
    """One changed setting: ``{"field": field, "before": before, "after": after, **extra}``."""
    return {"field": field, "before": before, "after": after, **extra}


def diff_of(changes, key="field"):
    """The ``diff`` of a list of changes: ``{"before": {c[key]: c["before"]}, "after": {c[key]: c["after"]}}``."""
    return {"before": {c[key]: c["before"] for c in changes}, "after": {c[key]: c["after"] for c in changes}}
