#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: gke_node_pool
short_description: Create, converge in place, or delete a GKE node pool, for example a T4 GPU pool
version_added: 0.1.0
description:
  - Compares only the options that are set with the node pool the API reports and applies each
    difference in place - autoscaling through C(setAutoscaling), node locations, Kubernetes labels,
    taints, workload metadata and image streaming through C(nodePools.update), the node image through
    C(clusters.update), auto-repair/upgrade through C(setManagement) - waiting for each long-running
    operation.
  - Machine type, disks, scopes, service account, spot, accelerators and GPU sharing cannot change in
    place; such differences are refused with a message listing them, unless O(recreate=true).
  - Compares in GKE's terms - a missing C(minNodeCount) is 0, image types are upper-case, scope aliases
    such as V(cloud-platform) are their URLs - so a converged pool stays C(changed=false).
  - Waits for the pool to be at rest (not PROVISIONING or RECONCILING) before planning, and retries calls
    GKE refuses while an operation runs on the cluster, until O(wait_timeout).
  - A pool in ERROR is replaced only with O(recreate=true); otherwise the run fails and changes nothing.
  - With an accelerator, GKE installs the NVIDIA driver itself (O(gpu_driver_version)); use
    V(INSTALLATION_DISABLED) to install drivers with a DaemonSet instead.
  - Check mode reports the planned changes; C(--diff) shows the fields before and after.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
  - rapids.triton_fil.endpoint.container
  - rapids.triton_fil.gke_parent
  - rapids.triton_fil.gke_operation
options:
  name:
    description: Node pool name.
    type: str
    required: true
  state:
    description: Whether the node pool should exist.
    type: str
    choices: [present, absent]
    default: present
  machine_type:
    description: Machine type (T4 GPUs attach to N1 machines). Recreate-only.
    type: str
    default: n1-standard-4
  disk_size_gb:
    description: Boot disk size. Recreate-only.
    type: int
    default: 100
  disk_type:
    description: Boot disk type (V(pd-balanced), V(pd-ssd), ...); the server default when unset. Recreate-only.
    type: str
  image_type:
    description:
      - Node image (V(COS_CONTAINERD), V(UBUNTU_CONTAINERD)); the server default (V(COS_CONTAINERD)) when unset.
      - Updated in place (C(clusters.update) with C(desiredNodePoolId)); the nodes are recreated by GKE.
    type: str
  oauth_scopes:
    description: OAuth scopes of the nodes, URLs or gcloud aliases (V(cloud-platform)). Recreate-only.
    type: list
    elements: str
    default: ['https://www.googleapis.com/auth/cloud-platform']
  service_account:
    description: Google service account of the nodes; the Compute Engine default when unset. Recreate-only.
    type: str
  spot:
    description:
      - Spot VMs (cheaper, may be reclaimed with 30 s notice; GKE labels the nodes C(cloud.google.com/gke-spot=true)).
        Pair a Spot pool with an on-demand pool of the same GPU as a fallback. Recreate-only.
    type: bool
    default: false
  accelerator_type:
    description:
      - GPU type, for example V(nvidia-tesla-t4) (N1 machine types) or V(nvidia-l4) (G2 machine types, which come
        with their GPUs); no GPU when unset. Recreate-only.
    type: str
  accelerator_count:
    description: GPUs per node; when unset, what a G2 machine type comes with, else 1. Recreate-only.
    type: int
  gpu_sharing_strategy:
    description:
      - Let several containers share each GPU - V(TIME_SHARING) or V(MPS) - up to O(max_shared_clients_per_gpu);
        V(NONE) for dedicated GPUs; unset leaves the setting alone. Chosen at creation, so recreate-only.
    type: str
    choices: [TIME_SHARING, MPS, NONE]
  max_shared_clients_per_gpu:
    description: Containers that may share one GPU (2 or more) with O(gpu_sharing_strategy). Recreate-only.
    type: int
  image_streaming:
    description:
      - Image streaming (C(gcfsConfig)) - nodes start containers from Artifact Registry images before the whole
        image is pulled. Needs the V(COS_CONTAINERD) image and the Container File System API enabled in the
        project. Unset leaves the setting alone. Updated in place.
    type: bool
  gpu_driver_version:
    description: How GKE installs the NVIDIA driver on the GPU nodes. Recreate-only.
    type: str
    choices: [DEFAULT, LATEST, INSTALLATION_DISABLED]
    default: DEFAULT
  initial_node_count:
    description: Nodes per zone at creation (not compared afterwards; autoscaling owns the size).
    type: int
    default: 1
  min_node_count:
    description: Autoscaling minimum per zone; set with O(max_node_count). Updated with C(setAutoscaling).
    type: int
  max_node_count:
    description: Autoscaling maximum per zone; set with O(min_node_count). Updated with C(setAutoscaling).
    type: int
  node_locations:
    description: Zones of the pool; the cluster's when unset. Updated in place.
    type: list
    elements: str
  labels:
    description: Kubernetes labels of the nodes; unset leaves them alone. Updated in place.
    type: dict
  taints:
    description: Kubernetes taints of the nodes; unset leaves them alone. Updated in place.
    type: list
    elements: dict
    suboptions:
      key:
        description: Taint key.
        type: str
        required: true
      value:
        description: Taint value.
        type: str
      effect:
        description: Taint effect.
        type: str
        required: true
        choices: [NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE]
  workload_metadata:
    description:
      - V(GKE_METADATA) exposes Workload Identity to pods (needed with it; GKE refuses it on a cluster without
        Workload Identity). When unset, V(GKE_METADATA) on a Workload Identity cluster, else GKE's default.
        Updated in place.
    type: str
    choices: [GKE_METADATA, GCE_METADATA]
  auto_repair:
    description: Node auto-repair.
    type: bool
    default: true
  auto_upgrade:
    description: Node auto-upgrade.
    type: bool
    default: true
  recreate:
    description: Delete and recreate the pool when a recreate-only option differs, or when it is in ERROR. Its nodes are replaced.
    type: bool
    default: false
attributes:
  check_mode:
    description: Plans the pool's changes, refusals included, without creating, resizing, updating or deleting it.
    support: full
  diff_mode:
    description: Shows each differing pool option before and after, as RV(changes) lists them.
    support: full
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The seed's T4 pool, autoscaling 2..3, drivers installed by GKE
  rapids.triton_fil.gke_node_pool:
    project: my-project
    cluster: triton-fil
    location: us-central1-a
    name: gpu-pool
    machine_type: n1-standard-4
    accelerator_type: nvidia-tesla-t4
    accelerator_count: 1
    gpu_driver_version: LATEST
    initial_node_count: 2
    min_node_count: 2
    max_node_count: 3
    taints:
      - {key: nvidia.com/gpu, value: present, effect: NO_SCHEDULE}

- name: An L4 pool on Spot VMs, two containers per GPU, images streamed from Artifact Registry
  rapids.triton_fil.gke_node_pool:
    project: my-project
    cluster: triton-fil
    location: us-central1-a
    name: gpu-l4-spot
    machine_type: g2-standard-8
    accelerator_type: nvidia-l4
    spot: true
    gpu_sharing_strategy: TIME_SHARING
    max_shared_clients_per_gpu: 2
    image_streaming: true
    min_node_count: 0
    max_node_count: 3
"""

RETURN = r"""
node_pool:
  description: The node pool after the run (before it, in check mode).
  returned: always
  type: dict
  contains:
    name: {description: Pool name., type: str}
    status: {description: Pool status (RUNNING when converged)., type: str}
    machine_type: {description: Machine type., type: str}
    accelerator_type: {description: GPU type., type: str}
    accelerator_count: {description: GPUs per node., type: int}
    gpu_driver_version: {description: GKE driver installation setting., type: str}
    gpu_sharing_strategy: {description: GPU sharing (V(NONE) for dedicated GPUs)., type: str}
    max_shared_clients_per_gpu: {description: Containers per GPU with sharing., type: int}
    image_streaming: {description: Whether image streaming is on., type: bool}
    spot: {description: Whether the nodes are Spot VMs., type: bool}
    image_type: {description: Node image., type: str}
    autoscaling: {description: The autoscaling settings as the API reports them., type: dict}
changes:
  description:
    - The pool options whose value differed from GKE's, by option name (autoscaling, O(labels), O(taints), ...).
    - C(in_place) is false for the options GKE cannot update (such as O(machine_type)); those need O(recreate).
  returned: always
  type: list
  elements: dict
  sample: [{field: autoscaling, before: {minNodeCount: 2, maxNodeCount: 3}, after: {minNodeCount: 2, maxNodeCount: 4}}]
operations:
  description:
    - Names of the node pool operations (create, update, autoscaling, delete) this run started and waited for.
  returned: when something was changed
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.client import (
    container_argument_spec, gke_parent_spec, run_container_module,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.node_pool import pool_options, run_pool


def main():
    options = dict(pool_options(), **gke_parent_spec())
    options.update(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        recreate=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=container_argument_spec(options), supports_check_mode=True)
    run_container_module(module, run_pool)


if __name__ == "__main__":
    main()
