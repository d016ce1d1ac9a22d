#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: triton_model_rollout
short_description: Roll new model versions out to running Triton servers, gated on reference outputs
version_added: 0.2.0
description:
  - Makes running Triton servers (started with C(--model-control-mode=explicit)) serve the versions the local
    model repository asks for, without a restart and without downtime, and only once those versions answered
    like their reference on every server.
  - "Per model: the versions to serve are what the local configuration's C(version_policy) selects from the
    local version folders (Triton's default: the highest). The new version folders are uploaded to the bucket
    (configurations are not); the versions are loaded on every server as a candidate model
    C(<model>__rollout_candidate) from the files themselves (the load API's C(file:) overrides), so no user
    request reaches them, and checked against the reference (metadata and outputs within its tolerance); the
    candidate is unloaded; then each server in turn loads the model with its configuration pinned to the new
    versions (C(version_policy: specific)) while a few clients keep sending unversioned requests: Triton keeps
    the old versions serving until the new ones are ready, then unloads them; every server is checked again;
    only then the pinned configurations are written to the bucket, so a server that starts later loads
    exactly the verified versions."
  - If any check fails, the old versions keep serving (a server already switched is loaded back), the task
    fails naming the server, the versions and the difference, and nothing is deleted from the bucket.
  - A model new to the servers goes the same way; a model the servers serve that is no longer in the local
    repository is kept unless O(remove_missing=true), which unloads it from every server (its files stay in the
    bucket).
  - With no server serving at all (the first deployment), models the bucket does not hold yet are published
    directly; changing a model the bucket already serves needs a server to verify on, unless
    O(unverified_publish=true).
  - Check mode returns the plan (what would be loaded and unloaded on which server, what would be uploaded)
    and writes nothing, not even a candidate; C(--diff) shows it. A second run is C(changed=false) and makes no
    write call (bucket reads and the repository index only).
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
options:
  src:
    description: The local model repository (one folder per model with C(config.pbtxt) and version folders).
    type: path
    required: true
  models:
    description: Roll out only these models; default every model folder of O(src).
    type: list
    elements: str
  config_name:
    description:
      - The C(--model-config-name) the servers run; V(cpu) makes them read C(configs/cpu.pbtxt). Empty is
        C(config.pbtxt). The candidate and the switch use that variant; every variant is pinned in the bucket.
    type: str
    default: ""
  references:
    description:
      - Reference file per model (model name to path, as M(rapids.triton_fil.triton_verify) reads them); default
        C(<src>/<model>_reference.json), which M(rapids.triton_fil.fil_model) writes. Every model needs one.
      - The reference describes the highest of the versions to serve (the one unversioned requests get).
    type: dict
  bucket:
    description: The bucket the servers read their model repository from, without C(gs://).
    type: str
    required: true
  prefix:
    description: The repository's object prefix in the bucket (C(--model-repository=gs://bucket/prefix)).
    type: str
    default: ""
  servers:
    description:
      - The servers as HTTP URLs (V(http://host:8000)), each with an optional C(name). When none answers, no
        server is serving yet; when only some answer, the task fails before anything is written.
      - Mutually exclusive with O(kubernetes).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name used in the results and messages.
        type: str
      url:
        description: The server's HTTP endpoint.
        type: str
        required: true
  kubernetes:
    description:
      - The servers are every Ready pod matching O(kubernetes.selector), each reached through its own
        C(pods/portforward) tunnel through the Kubernetes API (as M(rapids.triton_fil.triton_verify) does), or
        at its pod IP with O(kubernetes.tunnel=false) (from inside the cluster's network).
      - No matching pod at all means no server is serving yet; pods that exist but none Ready (after O(timeout))
        fail the task. A pod that becomes Ready during the rollout is brought to the pinned versions at the end.
      - The credentials need C(list) on C(pods) and C(get)/C(create) on C(pods/portforward) in the namespace.
    type: dict
    suboptions:
      kubeconfig:
        description: Kubeconfig file.
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
        description: Label selector of the Triton pods.
        type: str
        required: true
      port:
        description: Triton's HTTP port in the pods.
        type: int
        default: 8000
      tunnel:
        description: Reach each pod through the Kubernetes API (V(true)) or at its pod IP (V(false)).
        type: bool
        default: true
  remove_missing:
    description: Unload models that the servers serve but the local repository no longer has (the bucket keeps them).
    type: bool
    default: false
  unverified_publish:
    description:
      - With no server serving, also pin new versions of models the bucket already serves, without a check
        (a server that starts then loads them unverified; run M(rapids.triton_fil.triton_verify) after it).
    type: bool
    default: false
  timeout:
    description: Seconds for each load, unload and readiness wait, and to wait for a Ready pod.
    type: int
    default: 300
  switch_clients:
    description:
      - Clients sending unversioned reference requests to each server while it switches versions (the evidence
        of no downtime in RV(models)); V(0) sends none.
    type: int
    default: 2
  parallelism:
    description: Concurrent uploads of version files.
    type: int
    default: 8
  compare:
    description: How version files are compared with their objects (as M(rapids.triton_fil.gcs_sync) does).
    type: str
    choices: [auto, checksum]
    default: auto
  api_endpoint:
    description:
      - Base URL of the GCS API, for emulators such as fake-gcs-server.
      - Falls back to E(GCP_STORAGE_ENDPOINT), then E(STORAGE_EMULATOR_HOST).
    type: str
notes:
  - Triton's HTTP endpoint refuses request bodies above C(--http-max-input-size) (64 MiB by default); the
    candidate's model files travel base64-encoded in one load request, so raise that flag for larger models
    (for example C(triton_helm_extra_args)).
  - While a candidate is checked it is loaded next to the served model, on the same GPU.
requirements:
  - tritonclient[http]
  - kubernetes (with O(kubernetes))
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Roll the repository out to the local servers
  rapids.triton_fil.triton_model_rollout:
    src: "{{ playbook_dir }}/../model_repository"
    bucket: triton-fil-local
    prefix: triton/model_repository
    config_name: cpu
    auth_kind: anonymous
    api_endpoint: http://127.0.0.1:4443
    servers:
      - {name: triton-0, url: "http://127.0.0.1:8000"}
      - {name: triton-1, url: "http://127.0.0.1:8100"}

- name: Roll it out to every Triton pod of a GKE release, through the Kubernetes API
  rapids.triton_fil.triton_model_rollout:
    src: "{{ playbook_dir }}/../model_repository"
    bucket: my-project-triton-models
    prefix: triton/model_repository
    kubernetes:
      kubeconfig: "{{ triton_fil_kubeconfig }}"
      namespace: triton
      selector: app.kubernetes.io/instance=triton-fil,app.kubernetes.io/name=triton
  register: rollout
"""

RETURN = r"""
bucket:
  description: The repository the servers read.
  returned: always
  type: str
  sample: gs://my-project-triton-models/triton/model_repository
servers:
  description: The servers rolled out to (name, url, how they were reached); empty when none was serving.
  returned: always
  type: list
  elements: dict
  sample: [{name: triton/triton-fil-6d9f7c8b5-x2x7q, url: "http://127.0.0.1:40117", via: tunnel}]
plan:
  description: One line per model saying what is (or in check mode would be) done.
  returned: always
  type: list
  elements: str
models:
  description:
    - Per model the action (V(unchanged), V(publish), V(rollout), V(remove), V(kept), V(cleanup)), the versions
      to serve, the versions the bucket pinned, per server the versions before and after, the uploads, and after
      a rollout the candidate's check per server (C(candidate)), the check of what each server serves
      (C(served)) and the requests sent during each switch (C(switch), totals in C(traffic)).
  returned: always
  type: dict
  sample:
    fil:
      action: rollout
      desired: [2]
      bucket_pinned: [1]
      servers: {triton-0: {before: [1], after: [2]}}
      traffic: {requests: 412, failed: 0}
      switch: {triton-0: {requests: 412, failed: 0, answered_by_version: {"1": 250, "2": 162}}}
served_models:
  description: The models the servers serve once the rollout is done (what Triton should load at start).
  returned: always
  type: list
  elements: str
uploaded:
  description: Objects written to the bucket (version files, then the pinned configurations).
  returned: always
  type: list
  elements: str
repository_calls:
  description: The load and unload calls made at the servers.
  returned: always
  type: list
  elements: str
settled:
  description: Servers that started during the rollout and were brought to the pinned versions afterwards.
  returned: after a rollout
  type: list
  elements: str
switch_warnings:
  description: Requests that failed during a switch (the versions serve and were checked, but not without errors).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.module import GOOGLE_AUTH
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpSession, gcp_argument_spec
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import GcsClient, storage_endpoint_spec
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.verify import (
    HAS_TRITONCLIENT, TRITONCLIENT_IMPORT_ERROR,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.tunnel import (
    HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR, pods_spec,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.rollout import (
    check_params, run_rollout,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(
        src=dict(type="path", required=True),
        models=dict(type="list", elements="str"),
        config_name=dict(type="str", default=""),
        references=dict(type="dict"),
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", default=""),
        servers=dict(type="list", elements="dict", options=dict(
            name=dict(type="str"),
            url=dict(type="str", required=True),
        )),
        kubernetes=pods_spec(port=dict(type="int", default=8000), tunnel=dict(type="bool", default=True)),
        remove_missing=dict(type="bool", default=False),
        unverified_publish=dict(type="bool", default=False),
        timeout=dict(type="int", default=300),
        switch_clients=dict(type="int", default=2),
        parallelism=dict(type="int", default=8),
        compare=dict(type="str", default="auto", choices=["auto", "checksum"]),
        api_endpoint=storage_endpoint_spec(),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("servers", "kubernetes")],
                           required_one_of=[("servers", "kubernetes")])
    kubernetes = bool(module.params["kubernetes"])
    run_module(module, lambda: _result(module), validate=check_params,
               requires=[GOOGLE_AUTH, (HAS_TRITONCLIENT, "tritonclient[http]", TRITONCLIENT_IMPORT_ERROR),
                         (HAS_KUBERNETES or not kubernetes, "kubernetes", KUBERNETES_IMPORT_ERROR)])


def _result(module):
    result = run_rollout(GcsClient(GcpSession(module.params), module.params["api_endpoint"]), module.params,
                         module.check_mode)
    diff = result.pop("diff", None)
    result["warnings"] = list(result.get("switch_warnings", []))
    if module._diff and result["changed"]:  # pylint: disable=protected-access
        result["diff"] = diff
    return result


if __name__ == "__main__":
    main()
