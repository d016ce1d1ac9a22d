#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: triton_verify
short_description: Prove that a Triton Inference Server serves a model correctly
version_added: 0.1.0
description:
  - Waits (with a deadline) until the server is live, ready, and the model is ready; every call ends within
    O(timeout), and every failure is a task failure naming the URL and the fix.
  - Compares the model metadata the server reports with what the model configuration declares.
  - Sends reference inputs and compares the outputs with the expected outputs within tolerance;
    any difference fails the task and names the tensor, the index and both values.
  - Optionally runs a load phase (O(load.concurrency) clients for O(load.duration) seconds) and returns
    throughput and p50/p90/p99 latency, and reads the server's C(nv_inference_*) metrics.
  - "Read-only: never reports changed, and runs in check mode too."
  - With O(kubernetes_tunnel), the server is reached through the Kubernetes API (C(pods/portforward)), as
    C(kubectl port-forward) does (without kubectl), so a server behind a ClusterIP Service can be verified
    from outside the cluster's network.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
options:
  url:
    description:
      - Server address, V(http://host:8000) for O(protocol=http), V(host:8001) for O(protocol=grpc).
    type: str
    required: true
  protocol:
    description: Client protocol.
    type: str
    choices: [http, grpc]
    default: http
  model:
    description: Model name.
    type: str
    required: true
  model_version:
    description: Model version; empty for the server's choice.
    type: str
    default: ""
  timeout:
    description:
      - Seconds to wait for the server and the model to become ready, and the longest any single call
        (metadata, inference, a load-phase request, the metrics read) may take; gRPC calls get it as their
        deadline.
      - A model missing from the server's repository index fails at once instead of at the deadline; so
        does an endpoint that answers but not as Triton (an HTML page, an HTTP/1 server on a gRPC URL).
    type: int
    default: 300
  expected_config:
    description:
      - What the model configuration declares, to compare with the server's metadata, as returned
        by M(rapids.triton_fil.triton_model_repository) (C(inputs), C(outputs) with C(name),
        C(data_type), C(dims); C(max_batch_size)).
    type: dict
  reference_file:
    description:
      - JSON file with C(inputs) and C(outputs), each mapping a tensor name to C(datatype), C(shape)
        and C(data); optional C(atol) and C(rtol).
    type: path
  atol:
    description: Absolute tolerance; defaults to the reference file's, else V(1e-5).
    type: float
  rtol:
    description: Relative tolerance; defaults to the reference file's, else V(1e-4).
    type: float
  load:
    description: Optional load phase with the reference request.
    type: dict
    suboptions:
      concurrency:
        description: Concurrent clients.
        type: int
        default: 4
      duration:
        description: Seconds.
        type: float
        default: 5
      engine:
        description:
          - V(python) sends the requests from this module and needs nothing else. Over HTTP it sends one
            request, built once, on O(load.concurrency) keep-alive connections from one asyncio loop
            (each answer read to its end, its status checked); over gRPC each client has its own
            tritonclient client and thread.
          - V(perf_analyzer) runs Triton's C(perf_analyzer) with the reference rows as one request of that
            batch size, over three measurement windows that together last O(load.duration), and reads
            its CSV report into the same result fields (C(latency_ms.max) is then null); it fails when
            no perf_analyzer is found. perf_analyzer has no per-request timeout, so its whole run is bounded
            instead (twice O(load.duration) + O(timeout) + 30 seconds).
          - V(auto) uses perf_analyzer when it is found, else the Python loop.
        type: str
        choices: [python, perf_analyzer, auto]
        default: python
      perf_analyzer:
        description: Path of the perf_analyzer binary; by default perf_analyzer on PATH.
        type: path
  metrics_url:
    description: Prometheus endpoint of the server (port 8002) to read C(nv_inference_*) counters from.
    type: str
  kubernetes_tunnel:
    description:
      - Reach the server through the Kubernetes API instead of the network, as C(kubectl port-forward) does.
      - The module picks a Ready pod matching O(kubernetes_tunnel.selector) (waiting up to O(timeout) seconds
        for one), listens on a free port of 127.0.0.1 for the port of O(url) (and of O(metrics_url)), and
        forwards every connection over its own C(pods/portforward) websocket to that port of the pod.
      - The host of O(url) and O(metrics_url) is then ignored (typically the Service's in-cluster DNS name);
        their ports must be the pod's container ports (the chart's Service uses the same numbers).
      - The credentials need C(list) on C(pods) and C(get) and C(create) on C(pods/portforward) in the namespace.
      - Needs the C(kubernetes) Python library; kubectl and gcloud are not used (a kubeconfig with the
        C(gke-gcloud-auth-plugin) exec plugin runs that plugin, as the kubernetes client does).
    type: dict
    suboptions:
      kubeconfig:
        description: Kubeconfig file (for example the one M(rapids.triton_fil.gke_kubeconfig) writes).
        type: path
        required: true
      context:
        description: Context of the kubeconfig; empty takes its current context.
        type: str
      namespace:
        description: Namespace of the Triton pods.
        type: str
        required: true
      selector:
        description: Label selector of the Triton pods, such as V(app.kubernetes.io/instance=triton-fil).
        type: str
        required: true
attributes:
  diff_mode:
    support: none
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Verify the FIL model against its reference outputs, with a short load phase
  rapids.triton_fil.triton_verify:
    url: "{{ triton_fil_endpoint.http_url }}"
    model: fil
    reference_file: "{{ playbook_dir }}/../model_repository/fil_reference.json"
    load:
      concurrency: 4
      duration: 10
    metrics_url: http://127.0.0.1:8002/metrics

- name: Verify a release behind a ClusterIP Service from outside the cluster, through the Kubernetes API
  rapids.triton_fil.triton_verify:
    url: http://triton-fil.triton.svc.cluster.local:8000
    metrics_url: http://triton-fil.triton.svc.cluster.local:8002/metrics
    model: fil
    reference_file: "{{ playbook_dir }}/../model_repository/fil_reference.json"
    kubernetes_tunnel:
      kubeconfig: "{{ triton_fil_kubeconfig }}"
      namespace: triton
      selector: app.kubernetes.io/name=triton,app.kubernetes.io/instance=triton-fil
"""

RETURN = r"""
server:
  description: Server identity and readiness.
  returned: always
  type: dict
  sample: {version: 2.51.0, waited_s: 3.2}
metadata:
  description: Model metadata as the server reports it (tensor name to datatype and shape).
  returned: always
  type: dict
inference:
  description: Per-output comparison with the reference (max absolute error, mismatched count).
  returned: when O(reference_file) is given
  type: dict
load:
  description: Throughput and latency percentiles of the load phase.
  returned: when O(load) is given
  type: dict
  sample: {engine: python, requests: 812, throughput_rps: 162.4, latency_ms: {p50: 5.9, p90: 8.8, p99: 13.0}}
metrics:
  description: The server's nv_inference_* counters for the model.
  returned: when O(metrics_url) is given
  type: dict
tunnel:
  description:
    - The Kubernetes tunnel the requests went through, the pod port to local port mapping, the number of
      port-forward streams opened and the first errors the API server reported on them.
  returned: when O(kubernetes_tunnel) is given
  type: dict
  sample: {pod: triton-fil-6d9f7c8b5-x2x7q, namespace: triton, ports: {"8000": 40117, "8002": 35211},
           connections: 6, errors: []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.verify import (
    HAS_TRITONCLIENT, TRITONCLIENT_IMPORT_ERROR,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.runner import (
    run_verify, run_verify_via_tunnel,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.tunnel import (
    HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR, pods_spec,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            protocol=dict(type="str", default="http", choices=["http", "grpc"]),
            model=dict(type="str", required=True),
            model_version=dict(type="str", default=""),
            timeout=dict(type="int", default=300),
            expected_config=dict(type="dict"),
            reference_file=dict(type="path"),
            atol=dict(type="float"),
            rtol=dict(type="float"),
            load=dict(type="dict", options=dict(
                concurrency=dict(type="int", default=4),
                duration=dict(type="float", default=5),
                engine=dict(type="str", default="python", choices=["python", "perf_analyzer", "auto"]),
                perf_analyzer=dict(type="path"),
            )),
            metrics_url=dict(type="str"),
            kubernetes_tunnel=pods_spec(),
        ),
        supports_check_mode=True,
    )
    tunnel = bool(module.params["kubernetes_tunnel"])
    runner = run_verify_via_tunnel if tunnel else run_verify
    run_module(module, lambda: dict(runner(module.params), changed=False),
               requires=[(HAS_TRITONCLIENT, "tritonclient[all]", TRITONCLIENT_IMPORT_ERROR),
                         (HAS_KUBERNETES or not tunnel, "kubernetes", KUBERNETES_IMPORT_ERROR)])


if __name__ == "__main__":
    main()
