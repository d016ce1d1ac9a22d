#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_workload_identity
short_description: A Google service account for GKE Workload Identity, with its project and bucket roles
version_added: 0.1.0
description:
  - Ensures the Google service account O(name) exists in O(project) (IAM v1), grants it O(project_roles)
    on the project (Cloud Resource Manager v1) and O(bucket_roles) on Cloud Storage buckets, and grants
    C(roles/iam.workloadIdentityUser) on the service account itself to each Kubernetes service account
    of O(kubernetes_service_accounts), as the member C(serviceAccount:POOL[NAMESPACE/NAME]).
  - Each policy is changed read-modify-write with its etag, adding or removing only the exact
    (role, member) pairs this task names; every other binding, member and condition is kept. When
    the policy changed in between (409 ABORTED, or 412 from Cloud Storage), the read-modify-write is
    repeated. A policy that already holds every pair is not written.
  - Only unconditional bindings count; a conditional binding of the same member is left alone.
  - O(state=absent) removes only the pairs this task names and keeps the service account unless
    O(delete_account=true).
  - Check mode reports the planned changes; C(--diff) shows the members of each touched role before
    and after.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
options:
  name:
    description:
      - Account ID of the Google service account (the part of the email before C(@)), 6-30 characters.
      - The email is C(NAME@PROJECT.iam.gserviceaccount.com).
    type: str
    required: true
  display_name:
    description: Display name of the service account; unset leaves it alone. Updated in place.
    type: str
  state:
    description:
      - V(present) creates the account when missing and adds the bindings.
      - V(absent) removes the bindings named by this task; the account is kept unless O(delete_account=true).
    type: str
    choices: [present, absent]
    default: present
  delete_account:
    description: With O(state=absent), also delete the service account (after removing its bindings).
    type: bool
    default: false
  project_roles:
    description: Roles granted to the service account on O(project), for example V(roles/monitoring.viewer).
    type: list
    elements: str
    default: []
  bucket_roles:
    description: Roles granted to the service account on Cloud Storage buckets.
    type: list
    elements: dict
    default: []
    suboptions:
      bucket:
        description: Bucket name (without C(gs://)).
        type: str
        required: true
      role:
        description: Role, for example V(roles/storage.objectViewer).
        type: str
        required: true
  kubernetes_service_accounts:
    description:
      - Kubernetes service accounts, as C(NAMESPACE/NAME), allowed to act as this service account
        (C(roles/iam.workloadIdentityUser) on it). Annotate each with
        C(iam.gke.io/gcp-service-account=EMAIL).
    type: list
    elements: str
    default: []
  workload_pool:
    description: Workload Identity pool of the cluster; C(PROJECT.svc.id.goog) when unset.
    type: str
  iam_endpoint:
    description: IAM API root. Falls back to E(GCP_IAM_ENDPOINT). Tests point it at a simulator.
    type: str
    default: https://iam.googleapis.com
  resourcemanager_endpoint:
    description: Cloud Resource Manager API root. Falls back to E(GCP_RESOURCEMANAGER_ENDPOINT).
    type: str
    default: https://cloudresourcemanager.googleapis.com
  storage_endpoint:
    description: Cloud Storage JSON API root. Falls back to E(GCP_STORAGE_ENDPOINT).
    type: str
    default: https://storage.googleapis.com
  conflict_retries:
    description: How many times a read-modify-write is repeated after a concurrent policy change.
    type: int
    default: 5
attributes:
  check_mode:
    description: Reads the account and the policies and reports the planned changes without writing.
    support: full
  diff_mode:
    description: Shows the members of each touched role before and after, and the account's changes.
    support: full
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The Triton pods read the model bucket as triton-fil@
  rapids.triton_fil.gcp_workload_identity:
    project: my-project
    name: triton-fil
    display_name: Triton FIL inference server
    bucket_roles:
      - {bucket: my-project-triton-models, role: roles/storage.objectViewer}
    kubernetes_service_accounts: [triton/triton-fil]

- name: The metrics adapter reads Cloud Monitoring as triton-fil-metrics@
  rapids.triton_fil.gcp_workload_identity:
    project: my-project
    name: triton-fil-metrics
    project_roles: [roles/monitoring.viewer]
    kubernetes_service_accounts: [custom-metrics/custom-metrics-stackdriver-adapter]

- name: Take the bindings back, keep the account
  rapids.triton_fil.gcp_workload_identity:
    project: my-project
    name: triton-fil-metrics
    project_roles: [roles/monitoring.viewer]
    kubernetes_service_accounts: [custom-metrics/custom-metrics-stackdriver-adapter]
    state: absent
"""

RETURN = r"""
email:
  description: Email of the service account (the value of the C(iam.gke.io/gcp-service-account) annotation).
  returned: always
  type: str
  sample: triton-fil@my-project.iam.gserviceaccount.com
unique_id:
  description: Numeric unique ID of the service account; null when it does not exist (check mode, deleted).
  returned: always
  type: str
  sample: "104892734562394857234"
account:
  description: The service account after the run.
  returned: always
  type: dict
  contains:
    email: {description: Email., type: str}
    unique_id: {description: Unique ID., type: str}
    display_name: {description: Display name., type: str}
    name: {description: Resource name (projects/PROJECT/serviceAccounts/EMAIL)., type: str}
    disabled: {description: Whether the account is disabled., type: bool}
    exists: {description: Whether the account exists., type: bool}
changes:
  description:
    - What was (or, in check mode, would be) changed, one entry per account action or (role, member) pair.
    - Every entry has C(field), C(before) and C(after), as the changes of the other modules do (the account's
      C(before)/C(after) are C(absent)/C(present) when it is created or deleted; a pair's C(field) is
      C(RESOURCE ROLE MEMBER)), and C(resource), C(action) (C(create), C(update), C(delete), C(add) or
      C(remove)) and, for a pair, C(role) and C(member).
  returned: always
  type: list
  elements: dict
  sample:
    - {field: "projects/my-project roles/monitoring.viewer serviceAccount:triton-fil-metrics@my-project.iam.gserviceaccount.com",
       before: absent, after: present, resource: projects/my-project, role: roles/monitoring.viewer,
       member: "serviceAccount:triton-fil-metrics@my-project.iam.gserviceaccount.com", action: add}
conflicts_retried:
  description: Policy writes that met a concurrent change and were repeated.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.module import run_gcp_module
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import gcp_argument_spec
from ansible_collections.rapids.triton_fil.plugins.module_utils.iam.client import IamClient, endpoint_specs
from ansible_collections.rapids.triton_fil.plugins.module_utils.iam.workload_identity import run_workload_identity


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        display_name=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        delete_account=dict(type="bool", default=False),
        project_roles=dict(type="list", elements="str", default=[]),
        bucket_roles=dict(type="list", elements="dict", default=[], options=dict(
            bucket=dict(type="str", required=True), role=dict(type="str", required=True))),
        kubernetes_service_accounts=dict(type="list", elements="str", default=[]),
        workload_pool=dict(type="str"),
        conflict_retries=dict(type="int", default=5),
        **endpoint_specs(),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_gcp_module(module, lambda session, params: IamClient(
        session, params["iam_endpoint"], params["resourcemanager_endpoint"], params["storage_endpoint"],
        conflict_retries=params["conflict_retries"]), run_workload_identity)


if __name__ == "__main__":
    main()
