#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: gke_kubeconfig
short_description: Write a kubeconfig context for a GKE cluster (get-credentials without gcloud)
version_added: 0.1.0
description:
  - Reads the cluster's endpoint and CA certificate from the Container API (or takes O(endpoint) and
    O(ca_certificate)) and merges a cluster, user and context named like C(gcloud) names them into the
    kubeconfig at O(path), keeping every other entry. The file is written atomically with mode 0600.
  - O(auth=exec_plugin) (default) authenticates through C(gke-gcloud-auth-plugin) with
    C(--use_application_default_credentials), as the same identity the module used. With
    O(auth_kind=serviceaccount) the plugin gets O(service_account_file) as E(GOOGLE_APPLICATION_CREDENTIALS)
    in the exec entry, with O(impersonate_service_account) the plugin impersonates it too. O(auth=token)
    embeds a google-auth access token, refreshed only when the one in the file expires within
    O(min_token_lifetime) seconds. Credentials (tokens, passwords, client keys, auth-provider config,
    exec environment) never appear in the output or the diff, and the diff is returned only with C(--diff).
  - Tokens are minted with the C(userinfo.email) scope added to O(scopes). Without it GKE identifies a
    service account by its numeric ID, and RBAC bindings that name its e-mail do not apply.
  - Idempotent - nothing is written when the file already holds the same entries.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
  - rapids.triton_fil.endpoint.container
  - rapids.triton_fil.gke_parent
options:
  path:
    description: The kubeconfig file to create or update.
    type: path
    default: ~/.kube/config
  context:
    description: Context (and cluster/user entry) name; default C(gke_PROJECT_LOCATION_CLUSTER) like gcloud.
    type: str
  auth:
    description: How kubectl and the kubernetes client authenticate.
    type: str
    choices: [exec_plugin, token]
    default: exec_plugin
  min_token_lifetime:
    description: With O(auth=token), seconds of validity below which the stored token is replaced.
    type: int
    default: 900
  use_private_endpoint:
    description: Use the control plane's private endpoint (clusters with private nodes, from inside the VPC).
    type: bool
    default: false
  endpoint:
    description: Control plane address; with O(ca_certificate) the API is not called.
    type: str
  ca_certificate:
    description: Base64 PEM CA of the cluster; with O(endpoint) the API is not called.
    type: str
  set_current_context:
    description: Make the context the current one.
    type: bool
    default: true
attributes:
  check_mode:
    description: Reports whether the file would change without writing it.
    support: full
  diff_mode:
    description:
      - Shows the entries the module manages (its cluster, context and user, and current-context) before and
        after, every credential redacted; other entries of the file are never shown.
    support: full
requirements:
  - gke-gcloud-auth-plugin on the PATH of kubectl and of the kubernetes client, with O(auth=exec_plugin)
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Credentials for the cluster, in a file of the deployment's own
  rapids.triton_fil.gke_kubeconfig:
    project: my-project
    cluster: triton-fil
    location: us-central1-a
    path: "{{ playbook_dir }}/../.kube/triton-fil.yaml"
  register: kube

- name: Use it
  kubernetes.core.k8s_info:
    kubeconfig: "{{ kube.path }}"
    kind: Node
"""

RETURN = r"""
path:
  description: The kubeconfig file.
  returned: always
  type: str
context:
  description: The context name.
  returned: always
  type: str
  sample: gke_my-project_us-central1-a_triton-fil
server:
  description: The control plane URL written.
  returned: always
  type: str
auth:
  description: The authentication method written.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.client import (
    container_argument_spec, gke_parent_spec, run_container_module,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.kubeconfig import EMAIL_SCOPE, run_kubeconfig


def main():
    options = gke_parent_spec()
    options.update(
        path=dict(type="path", default="~/.kube/config"),
        context=dict(type="str"),
        auth=dict(type="str", default="exec_plugin", choices=["exec_plugin", "token"]),
        min_token_lifetime=dict(type="int", default=900, no_log=False),
        use_private_endpoint=dict(type="bool", default=False),
        endpoint=dict(type="str"),
        ca_certificate=dict(type="str"),
        set_current_context=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=container_argument_spec(options, waits=False), supports_check_mode=True)
    # A token for the kubeconfig must name its identity by e-mail (see EMAIL_SCOPE).
    if EMAIL_SCOPE not in module.params["scopes"]:
        module.params["scopes"] = list(module.params["scopes"]) + [EMAIL_SCOPE]
    run_container_module(module, lambda client, params, check_mode: run_kubeconfig(
        client, params, check_mode, diff=module._diff))  # pylint: disable=protected-access


if __name__ == "__main__":
    main()
