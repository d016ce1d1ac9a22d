# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""One convention for a module's ``changes`` list and the ``diff`` built from it.

Every module that returns ``changes`` (gcs_bucket, artifact_registry_repository, gke_cluster, gke_node_pool,
gcp_workload_identity) gives one dict per changed thing: ``{"field": name, "before": old, "after": new}``,
built with ``change``; ``diff_of(changes)`` turns such a list into the ``{"before": {...}, "after": {...}}``
that ``--diff`` shows. Extra keys follow the three:

* gke/plan.py plans with ``action`` (the API call that applies it, or ``"recreate"``) and returns
  ``public_changes``: ``{field, before, after, in_place}``;
* a whole resource created or deleted is one change of ``field`` = the resource kind, before/after
  ``"absent"``/``"present"``;
* iam/workload_identity.py adds ``resource`` and ``action`` (and ``role``, ``member`` for a policy pair,
  whose field is ``"RESOURCE ROLE MEMBER"``); its diff shows each policy's roles instead.

Two other lists are not changes of settings and keep their own shape: triton/model_config.py's
``migrations`` (``{file, path, before, after, notes}``, whole file texts, their diff one entry per file)
and gcs_sync's ``actions`` (``{op, object, reason, bytes}``, one per object).
"""

from __future__ import annotations


def change(field, before, after, **extra):
    """One changed setting: ``{"field": field, "before": before, "after": after, **extra}``."""
    return {"field": field, "before": before, "after": after, **extra}


def diff_of(changes, key="field"):
    """The ``diff`` of a list of changes: ``{"before": {c[key]: c["before"]}, "after": {c[key]: c["after"]}}``."""
    return {"before": {c[key]: c["before"] for c in changes}, "after": {c[key]: c["after"] for c in changes}}
