# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Options of the GKE modules that act on something of an existing cluster (a node pool, a kubeconfig entry)."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  cluster:
    description: Name of the GKE cluster (M(rapids.triton_fil.gke_cluster) creates it).
    type: str
    required: true
  location:
    description: The cluster's zone (a zonal cluster) or region (a regional cluster).
    type: str
    required: true
"""
