# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The few GCS JSON API calls the collection needs, on top of GcpSession."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from urllib.parse import quote

from ansible.module_utils.basic import env_fallback

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
SIMPLE_UPLOAD_LIMIT = 8 * 1024 * 1024
RESUMABLE_CHUNK = 8 * 1024 * 1024  # a multiple of 256 KiB, as GCS requires
BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def storage_endpoint_spec():
    return dict(
        type="str",
        fallback=(env_fallback, ["GCP_STORAGE_ENDPOINT", "STORAGE_EMULATOR_HOST"]),
    )


def check_bucket_name(name, option="bucket"):
    """Return a problem string for an invalid bucket name, or None (GCS naming rules)."""
    if not name:
        return f"{option} is empty — give a bucket name such as 'my-project-triton-models'"
    if name.startswith("gs://"):
        return f"{option} {name!r} must be a bare bucket name — drop the 'gs://' prefix"
    if not BUCKET_NAME_RE.match(name) or ".." in name or name.startswith("goog"):
        return (f"{option} {name!r} is not a valid bucket name — use 3-63 lowercase letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit")
    if "." not in name and len(name) > 63:
        return f"{option} {name!r} is longer than 63 characters — shorten it"
    return None


def file_md5_b64(path, block=1024 * 1024):
    digest = hashlib.md5()  # GCS's own integrity hash, not a security use
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")


class GcsClient:
    """Buckets and objects through the GCS JSON API (real GCS or fake-gcs-server)."""

    def __init__(self, session, endpoint=None):
        self.session = session
        endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        if "://" not in endpoint:  # STORAGE_EMULATOR_HOST is often host:port
            endpoint = "http://" + endpoint
        self.endpoint = endpoint
        self.api = endpoint + "/storage/v1"
        self.upload_api = endpoint + "/upload/storage/v1"

    # -- buckets ------------------------------------------------------------------------------
    def get_bucket(self, name):
        return self.session.json("GET", f"{self.api}/b/{quote(name, safe='')}",
                                 allow=(404,), context=f"bucket {name!r}")

    def create_bucket(self, project, body):
        if not project:
            raise GcpError(f"creating bucket {body['name']!r} needs project (or GCP_PROJECT) to be set")
        return self.session.json("POST", f"{self.api}/b", params={"project": project}, json=body,
                                 context=f"bucket {body['name']!r} in project {project!r}")

    def patch_bucket(self, name, body):
        return self.session.json("PATCH", f"{self.api}/b/{quote(name, safe='')}", json=body,
                                 context=f"bucket {name!r}")

    def delete_bucket(self, name):
        self.session.request("DELETE", f"{self.api}/b/{quote(name, safe='')}", expected=(200, 204),
                             allow=(404,), context=f"bucket {name!r}")

    # -- objects ------------------------------------------------------------------------------
    def list_objects(self, bucket, prefix=""):
        """{name: {size, md5Hash, crc32c, generation}} of every object under prefix."""
        objects, token = {}, None
        while True:
            params = {"prefix": prefix, "fields": "items(name,size,md5Hash,crc32c,generation,metadata),nextPageToken"}
            if token:
                params["pageToken"] = token
            page = self.session.json("GET", f"{self.api}/b/{quote(bucket, safe='')}/o", params=params,
                                     context=f"listing gs://{bucket}/{prefix}") or {}
            for item in page.get("items", []):
                objects[item["name"]] = {
                    "size": int(item.get("size", 0)),
                    "md5Hash": item.get("md5Hash"),
                    "crc32c": item.get("crc32c"),
                    "generation": item.get("generation"),
                    "metadata": item.get("metadata") or {},
                }
            token = page.get("nextPageToken")
            if not token:
                return objects

    def upload(self, bucket, name, path, md5_b64, size, if_generation_match=None, content_type=None, metadata=None):
        """Upload one file; multipart below SIMPLE_UPLOAD_LIMIT, resumable in chunks above."""
        content_type = content_type or "application/octet-stream"
        params = {}
        if if_generation_match is not None:
            params["ifGenerationMatch"] = str(if_generation_match)
        context = f"uploading {path} to gs://{bucket}/{name}"
        metadata = {"name": name, "md5Hash": md5_b64, "contentType": content_type, "metadata": metadata or {}}
        if size <= SIMPLE_UPLOAD_LIMIT:
            with open(path, "rb") as handle:
                data = handle.read()
            boundary = "triton_fil_" + hashlib.sha1(name.encode()).hexdigest()  # not security-relevant
            body = b"".join([
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps(metadata).encode(),
                f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ])
            params["uploadType"] = "multipart"
            return self.session.json(
                "POST", f"{self.upload_api}/b/{quote(bucket, safe='')}/o", params=params, data=body,
                headers={"Content-Type": f"multipart/related; boundary={boundary}"}, context=context,
            )
        params["uploadType"] = "resumable"
        start = self.session.request(
            "POST", f"{self.upload_api}/b/{quote(bucket, safe='')}/o", params=params, json=metadata,
            headers={"X-Upload-Content-Type": content_type, "X-Upload-Content-Length": str(size)},
            context=context,
        )
        session_url = start.headers.get("Location")
        if not session_url:
            raise GcpError(f"{context}: the server did not return a resumable upload session URL")
        offset = 0
        with open(path, "rb") as handle:
            while offset < size:
                chunk = handle.read(RESUMABLE_CHUNK)
                end = offset + len(chunk) - 1
                response = self.session.request(
                    "PUT", session_url, data=chunk,
                    headers={"Content-Range": f"bytes {offset}-{end}/{size}"},
                    expected=(200, 201, 308), context=context,
                )
                offset = end + 1
                if response.status_code in (200, 201):
                    return response.json() if response.content else {}
        raise GcpError(f"{context}: upload ended without the server confirming the object")

    def delete_object(self, bucket, name, generation=None):
        params = {"ifGenerationMatch": str(generation)} if generation else {}
        self.session.request("DELETE", f"{self.api}/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}",
                             params=params, expected=(200, 204), allow=(404,),
                             context=f"deleting gs://{bucket}/{name}")


def walk_local_tree(root, exclude=(".*", "__pycache__", "*.pyc")):
    """{relative posix path: absolute path} of the files under root, skipping excluded names."""
    import fnmatch

    files = {}
    root = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not any(fnmatch.fnmatch(d, p) for p in exclude))
        for filename in sorted(filenames):
            if any(fnmatch.fnmatch(filename, p) for p in exclude):
                continue
            full = os.path.join(dirpath, filename)
            files[os.path.relpath(full, root).replace(os.sep, "/")] = full
    return files
