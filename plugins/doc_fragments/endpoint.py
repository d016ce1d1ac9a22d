# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The API root option of the modules that share one Google API (O(api_endpoint)), documented once per API."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    # gcs_bucket, gcs_sync
    STORAGE = r"""
options:
  api_endpoint:
    description:
      - Base URL of the Cloud Storage JSON API, for emulators such as fake-gcs-server.
      - Falls back to E(GCP_STORAGE_ENDPOINT), then E(STORAGE_EMULATOR_HOST).
    type: str
"""

    # gke_cluster, gke_node_pool, gke_kubeconfig
    CONTAINER = r"""
options:
  api_endpoint:
    description:
      - Container (GKE) API root. Falls back to E(GCP_CONTAINER_ENDPOINT). Tests point it at a simulator.
    type: str
    default: https://container.googleapis.com
"""
