#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: gcs_sync
short_description: Sync a local folder (a Triton model repository) to gs://bucket/prefix
version_added: 0.1.0
description:
  - Lists the objects under O(prefix), compares each local file with its object (size, then the
    modification time recorded at upload or the MD5, see O(compare)), and uploads only the files
    that are new or differ, in parallel. Files above 8 MiB
    go through resumable uploads in 8 MiB chunks.
  - Only regular files inside O(src) are synced. Symbolic links are followed while their target stays
    inside O(src) (the file is synced under the link's name); a link that leads outside O(src), a broken
    link, a link loop, a folder or file that cannot be read, a FIFO, socket or device, a name that is not
    UTF-8 and a name GCS refuses (a carriage return or line feed, more than 1024 bytes) fail the task
    before anything is uploaded or deleted, each listed with its fix. Exclude such entries with O(exclude).
  - Uploads carry their MD5 so the server verifies them, and C(ifGenerationMatch) preconditions so a
    retried or concurrent upload never overwrites an object it did not compare against. Resumable
    uploads follow GCS's protocol when a chunk's answer is lost (they ask the session how many bytes it
    holds and resume there, or start a new session when the old one is gone).
  - Every stored object's size and MD5 are compared with the local file; an object that differs is
    uploaded once more and, if it still differs, removed and reported - never left as done.
  - Objects under the prefix that have no local file are reported in RV(extra) and kept; they are
    deleted only with O(delete=true), and never when their name matches O(exclude) (as C(gsutil rsync -x)).
  - Check mode lists the planned uploads and deletes; C(--diff) shows them.
extends_documentation_fragment:
  - rapids.triton_fil.attributes
  - rapids.triton_fil.gcp
  - rapids.triton_fil.endpoint.storage
options:
  src:
    description: Local folder to upload.
    type: path
    required: true
  bucket:
    description: Destination bucket name, without C(gs://).
    type: str
    required: true
  prefix:
    description: Object name prefix (a "folder" in the bucket); leading and trailing slashes are ignored.
    type: str
    default: ""
  delete:
    description: Delete objects under O(prefix) that have no local counterpart.
    type: bool
    default: false
  exclude:
    description:
      - Shell patterns of file or folder names to skip.
      - Objects whose name has a part matching a pattern are not deleted either, even with O(delete=true).
    type: list
    elements: str
    default: [".*", "__pycache__", "*.pyc"]
  compare:
    description:
      - V(auto) takes a file as unchanged when its size and modification time equal those recorded on
        the object at upload (no hashing, like C(gcloud storage rsync)); any other file is compared by MD5.
      - V(checksum) hashes every file and compares MD5s.
    type: str
    choices: [auto, checksum]
    default: auto
  parallelism:
    description: Concurrent uploads.
    type: int
    default: 8
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Upload the model repository
  rapids.triton_fil.gcs_sync:
    src: "{{ playbook_dir }}/../model_repository"
    bucket: my-project-triton-models
    prefix: triton/model_repository
    exclude: [".*", "*.py", "*.json.ref"]

- name: Mirror exactly, removing objects that are gone locally
  rapids.triton_fil.gcs_sync:
    src: /srv/models
    bucket: my-project-triton-models
    prefix: triton/model_repository
    delete: true
"""

RETURN = r"""
url:
  description: The synced location.
  returned: always
  type: str
  sample: gs://my-project-triton-models/triton/model_repository
bucket:
  description: The bucket of RV(url), as given in O(bucket).
  returned: always
  type: str
  sample: my-project-triton-models
  version_added: 0.2.0
prefix:
  description: The object prefix of RV(url), without leading or trailing slashes (empty for the whole bucket).
  returned: always
  type: str
  sample: triton/model_repository
  version_added: 0.2.0
actions:
  description: The planned (and, outside check mode, executed) operations.
  returned: always
  type: list
  elements: dict
  sample: [{op: upload, object: triton/model_repository/fil/config.pbtxt, reason: md5, bytes: 812}]
uploaded:
  description: Files uploaded.
  returned: always
  type: int
deleted:
  description: Objects deleted (only with O(delete=true)).
  returned: always
  type: int
unchanged:
  description: Files whose object already had the same size and MD5.
  returned: always
  type: int
extra:
  description: Objects under the prefix with no local file, kept because O(delete=false) or because they match O(exclude).
  returned: always
  type: list
  elements: str
bytes_planned:
  description: Bytes the plan uploads.
  returned: always
  type: int
bytes_sent:
  description: Bytes uploaded (0 in check mode and when nothing changed).
  returned: always
  type: int
planned_uploads:
  description: Number of uploads in the plan.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.module import run_gcp_module
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError, gcp_argument_spec
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import (
    GcsClient, check_bucket_name, storage_endpoint_spec,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.runner import run_sync


def main():
    argument_spec = gcp_argument_spec()
    argument_spec.update(
        src=dict(type="path", required=True),
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", default=""),
        delete=dict(type="bool", default=False),
        exclude=dict(type="list", elements="str", default=[".*", "__pycache__", "*.pyc"]),
        compare=dict(type="str", default="auto", choices=["auto", "checksum"]),
        parallelism=dict(type="int", default=8),
        api_endpoint=storage_endpoint_spec(),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_gcp_module(module, lambda session, params: GcsClient(session, params["api_endpoint"]), _sync,
                   validate=_problems)


def _problems(params):
    problems = [p for p in [check_bucket_name(params["bucket"], "bucket")] if p]
    if params["parallelism"] < 1:
        problems.append(f"parallelism ({params['parallelism']}) must be at least 1")
    return problems


def _sync(client, params, check_mode):
    try:
        return run_sync(client, params, check_mode)
    except OSError as exc:  # a local file that changed between planning and upload
        raise GcpError(f"{exc.filename or params['src']}: {exc.strerror or exc} — fix it and run the sync again; "
                       "nothing that failed was reported as uploaded") from exc


if __name__ == "__main__":
    main()
