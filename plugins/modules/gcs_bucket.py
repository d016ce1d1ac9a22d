#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: gcs_bucket
short_description: Create, update or delete a Google Cloud Storage bucket
version_added: 0.1.0
description:
  - Makes a GCS bucket match the requested settings through the GCS JSON API with a google-auth
    session, changing only what differs (labels, storage class, uniform access, public access
    prevention, versioning).
  - A bucket's location cannot change; asking for another location fails with the fix rather than
    recreating the bucket.
  - O(state=absent) deletes an empty bucket only; a bucket that still holds objects is kept and the
    module fails unless O(force=true), so data is never lost by accident.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
  - rapids.triton_fil.endpoint.storage
options:
  name:
    description: The bucket name, without C(gs://).
    type: str
    required: true
  state:
    description: Whether the bucket should exist.
    type: str
    choices: [present, absent]
    default: present
  location:
    description:
      - Location for a new bucket (for example V(US), V(US-CENTRAL1)). Compared with an existing bucket's
        location, and a mismatch is an error.
    type: str
    default: US
  storage_class:
    description: Default storage class.
    type: str
    choices: [STANDARD, NEARLINE, COLDLINE, ARCHIVE]
  uniform_access:
    description: Uniform bucket-level access (IAM only, no object ACLs).
    type: bool
    default: true
  public_access_prevention:
    description: Public access prevention.
    type: str
    choices: [enforced, inherited]
    default: enforced
  labels:
    description: Labels to set; the whole label set is managed when given.
    type: dict
  versioning:
    description: Object versioning.
    type: bool
  force:
    description:
      - With O(state=absent), delete every object in the bucket, then the bucket.
      - Without it a non-empty bucket is kept and the module fails.
    type: bool
    default: false
notes:
  - Fields that the server does not report (some emulators omit C(iamConfiguration) or C(labels))
    are returned in RV(unverified) and not rewritten on every run.
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Model bucket with uniform access
  rapids.triton_fil.gcs_bucket:
    name: my-project-triton-models
    project: my-project
    location: US-CENTRAL1
    labels:
      app: triton-fil

- name: Remove the bucket and everything in it (explicitly asked)
  rapids.triton_fil.gcs_bucket:
    name: my-project-triton-models
    state: absent
    force: true
"""

RETURN = r"""
bucket:
  description: The bucket resource after the run (before it, in check mode).
  returned: when the bucket exists
  type: dict
changes:
  description: The bucket's options whose value differed from Cloud Storage's (O(labels), O(versioning), ...).
  returned: always
  type: list
  elements: dict
  sample: [{field: labels, before: {}, after: {app: triton-fil}}]
unverified:
  description: Requested fields the server does not report, so they could not be compared.
  returned: always
  type: list
  elements: str
deleted_objects:
  description: Number of objects deleted with O(force=true).
  returned: when O(state=absent)
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.module import run_gcp_module
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import gcp_argument_spec
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import (
    GcsClient, check_bucket_name, storage_endpoint_spec,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.runner import run_bucket


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        location=dict(type="str", default="US"),
        storage_class=dict(type="str", choices=["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"]),
        uniform_access=dict(type="bool", default=True),
        public_access_prevention=dict(type="str", default="enforced", choices=["enforced", "inherited"]),
        labels=dict(type="dict"),
        versioning=dict(type="bool"),
        force=dict(type="bool", default=False),
        api_endpoint=storage_endpoint_spec(),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_gcp_module(module, lambda session, params: GcsClient(session, params["api_endpoint"]), run_bucket,
                   validate=lambda params: [p for p in [check_bucket_name(params["name"], "name")] if p])


if __name__ == "__main__":
    main()
