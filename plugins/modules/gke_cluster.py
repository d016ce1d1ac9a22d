#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: gke_cluster
short_description: Create, converge in place, or delete a GKE cluster (Container API v1)
version_added: 0.1.0
description:
  - Reads the cluster, compares only the options that are set with what the API reports, and applies
    each difference through the API's in-place methods (C(clusters.update) with one C(desired*) field
    per call, C(setAddons), C(setResourceLabels)), waiting for every long-running operation.
  - Differences the API cannot apply in place (network, subnetwork, private nodes, the default node
    pool's machine type, disk or scopes) are refused with a message that lists them, unless
    O(recreate=true). A cluster is never recreated silently.
  - Waits for the cluster to be at rest before planning and after every change (a new cluster stays
    RECONCILING while GKE runs operations of its own), and retries calls GKE refuses while an operation
    runs, until O(wait_timeout). A create or delete whose answer was lost is recognised when retried.
  - Check mode reports the planned changes; C(--diff) shows the fields before and after.
  - The Istio add-on of the original recipe no longer exists on GKE and is not offered.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
  - rapids.triton_fil.endpoint.container
  - rapids.triton_fil.gke_operation
options:
  name:
    description: Cluster name.
    type: str
    required: true
  location:
    description: Zone (V(us-central1-a), a zonal cluster) or region (V(us-central1), a regional cluster).
    type: str
    required: true
  state:
    description: Whether the cluster should exist. V(absent) deletes it with all its node pools.
    type: str
    choices: [present, absent]
    default: present
  node_locations:
    description:
      - Zones the nodes run in; updated in place. A zonal cluster's own zone is always among them (GKE needs it),
        so it is added when missing.
      - GKE cannot add and remove zones in one request; such a change is applied in two (add, then remove).
    type: list
    elements: str
  initial_node_count:
    description: Nodes per zone of the default pool at creation (not compared afterwards).
    type: int
    default: 1
  machine_type:
    description: Machine type of the default node pool (system workloads). Recreate-only.
    type: str
    default: e2-standard-4
  disk_size_gb:
    description: Boot disk size of the default pool's nodes. Recreate-only.
    type: int
    default: 100
  oauth_scopes:
    description: OAuth scopes of the default pool's nodes. Recreate-only.
    type: list
    elements: str
    default: ['https://www.googleapis.com/auth/cloud-platform']
  network:
    description: VPC network (name or self-link); the project's default when unset. Recreate-only.
    type: str
  subnetwork:
    description: Subnetwork (name or self-link); the network's default when unset. Recreate-only.
    type: str
  addons:
    description: Add-ons to enable (V(true)) or disable (V(false)); unset ones are left as they are. Applied with C(setAddons).
    type: dict
    default: {horizontal_pod_autoscaling: true, http_load_balancing: true}
    suboptions:
      horizontal_pod_autoscaling:
        description: The HorizontalPodAutoscaling add-on (needed by the Triton HPA).
        type: bool
      http_load_balancing:
        description: The HttpLoadBalancing add-on.
        type: bool
      gcs_fuse_csi_driver:
        description: The Cloud Storage FUSE CSI driver.
        type: bool
  release_channel:
    description: GKE release channel; updated in place.
    type: str
    choices: [RAPID, REGULAR, STABLE, EXTENDED, UNSPECIFIED]
    default: REGULAR
  workload_identity:
    description: Enable Workload Identity (pool C(PROJECT.svc.id.goog)) so pods use Google service accounts without key files.
    type: bool
    default: true
  private_nodes:
    description: Nodes without public IPs. Recreate-only.
    type: bool
    default: false
  master_ipv4_cidr_block:
    description: /28 range of the control plane with O(private_nodes=true). Recreate-only.
    type: str
    default: 172.16.0.32/28
  master_authorized_networks:
    description: CIDR blocks allowed to reach the control plane; unset leaves the setting alone, a list enables it.
    type: list
    elements: dict
    suboptions:
      cidr_block:
        description: The CIDR block, for example V(203.0.113.0/24).
        type: str
        required: true
      display_name:
        description: A label for the block.
        type: str
  labels:
    description: Resource labels; unset leaves them alone. Applied with C(setResourceLabels).
    type: dict
  recreate:
    description: Delete and recreate the cluster when a recreate-only option differs. Workloads on it are lost.
    type: bool
    default: false
  node_pools:
    description:
      - Node pools created together with the cluster, inside its create operation (GKE brings them up in
        parallel), instead of one M(rapids.triton_fil.gke_node_pool) operation each afterwards, which saves
        minutes on a new cluster. The C(default-pool) described by O(machine_type) is always created first.
      - Each item takes the options of M(rapids.triton_fil.gke_node_pool) that describe a pool (V(name),
        V(machine_type), V(accelerator_type), V(min_node_count), V(max_node_count), V(labels), V(taints), ...),
        with the same defaults and checks; each problem names its item, such as C(node_pools[0]).
      - Used only when the cluster is created (or recreated); on an existing cluster it is not compared. Converge
        the pools of an existing cluster with M(rapids.triton_fil.gke_node_pool), which then finds them in place.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    description: Plans the cluster's changes, refusals included, without creating, updating or deleting it.
    support: full
  diff_mode:
    description: Shows each differing cluster option before and after, as RV(changes) lists them.
    support: full
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The seed's cluster, converged (Istio is gone from GKE; Workload Identity on)
  rapids.triton_fil.gke_cluster:
    project: my-project
    name: triton-fil
    location: us-central1-a
    machine_type: n1-standard-8
    node_locations: [us-central1-a]
    addons:
      horizontal_pod_autoscaling: true
      http_load_balancing: true
    labels:
      app: triton-fil
  register: cluster

- name: A new cluster with its T4 pool created in the same operation (one wait instead of two)
  rapids.triton_fil.gke_cluster:
    project: my-project
    name: triton-fil
    location: us-central1-a
    node_pools:
      - name: gpu-pool
        machine_type: n1-standard-4
        accelerator_type: nvidia-tesla-t4
        min_node_count: 2
        max_node_count: 3

- name: Remove it
  rapids.triton_fil.gke_cluster:
    project: my-project
    name: triton-fil
    location: us-central1-a
    state: absent
"""

RETURN = r"""
cluster:
  description: The cluster after the run (before it, in check mode).
  returned: always
  type: dict
  contains:
    name:
      description: Cluster name.
      type: str
    location:
      description: Zone or region.
      type: str
    status:
      description: Cluster status (RUNNING when converged).
      type: str
    endpoint:
      description: Public IP of the control plane.
      type: str
    private_endpoint:
      description: Private IP of the control plane with private nodes.
      type: str
    ca_certificate:
      description: Base64 PEM of the cluster CA (public data).
      type: str
    master_version:
      description: Control plane Kubernetes version.
      type: str
    workload_pool:
      description: Workload Identity pool; empty when disabled.
      type: str
    node_pools:
      description: Names of the node pools.
      type: list
      elements: str
changes:
  description:
    - The cluster options whose value differed from GKE's, by option name (O(release_channel), O(labels), ...).
    - C(in_place) is false for the options GKE cannot update (such as O(network)); those need O(recreate).
  returned: always
  type: list
  elements: dict
  sample: [{field: release_channel, before: STABLE, after: REGULAR, in_place: true}]
operations:
  description: Names of the cluster operations (create, update, delete) this run started and waited for.
  returned: when something was changed
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.client import (
    container_argument_spec, run_container_module,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.cluster import run_cluster


def main():
    options = dict(
        name=dict(type="str", required=True),
        location=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        node_locations=dict(type="list", elements="str"),
        initial_node_count=dict(type="int", default=1),
        machine_type=dict(type="str", default="e2-standard-4"),
        disk_size_gb=dict(type="int", default=100),
        oauth_scopes=dict(type="list", elements="str", default=["https://www.googleapis.com/auth/cloud-platform"]),
        network=dict(type="str"),
        subnetwork=dict(type="str"),
        addons=dict(type="dict", default={"horizontal_pod_autoscaling": True, "http_load_balancing": True},
                    options=dict(horizontal_pod_autoscaling=dict(type="bool"), http_load_balancing=dict(type="bool"),
                                 gcs_fuse_csi_driver=dict(type="bool"))),
        release_channel=dict(type="str", default="REGULAR",
                             choices=["RAPID", "REGULAR", "STABLE", "EXTENDED", "UNSPECIFIED"]),
        workload_identity=dict(type="bool", default=True),
        private_nodes=dict(type="bool", default=False),
        master_ipv4_cidr_block=dict(type="str", default="172.16.0.32/28"),
        master_authorized_networks=dict(type="list", elements="dict", options=dict(
            cidr_block=dict(type="str", required=True), display_name=dict(type="str"))),
        labels=dict(type="dict"),
        recreate=dict(type="bool", default=False),
        node_pools=dict(type="list", elements="dict", default=[]),
    )
    module = AnsibleModule(argument_spec=container_argument_spec(options), supports_check_mode=True)
    run_container_module(module, run_cluster)


if __name__ == "__main__":
    main()
