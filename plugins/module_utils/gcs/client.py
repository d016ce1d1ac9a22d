# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The few GCS JSON API calls the collection needs, on top of GcpSession."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import quote

from ansible.module_utils.basic import env_fallback

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import (
    GcpApiError, GcpConnectionError, GcpError,
)

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
SIMPLE_UPLOAD_LIMIT = 8 * 1024 * 1024
RESUMABLE_CHUNK = 8 * 1024 * 1024  # a multiple of 256 KiB, as GCS requires
MAX_UPLOAD_SESSIONS = 3  # resumable sessions started for one file before giving up
MAX_OBJECT_NAME_BYTES = 1024
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


def check_object_name(name):
    """A problem string for an object name GCS refuses, or None.

    The rules of https://cloud.google.com/storage/docs/naming-objects: 1-1024 bytes of UTF-8, no
    carriage return or line feed, not "." or "..", not under ".well-known/acme-challenge/".
    """
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return f"object name {name!r} is not valid UTF-8 — rename the file"
    if "\r" in name or "\n" in name:
        return f"object name {name!r} holds a carriage return or line feed, which GCS refuses — rename the file"
    if size > MAX_OBJECT_NAME_BYTES:
        return (f"object name {name[:60]!r}... is {size} bytes of UTF-8, over GCS's {MAX_OBJECT_NAME_BYTES} — "
                "shorten the path or the prefix")
    if name in (".", "..") or name.startswith(".well-known/acme-challenge/"):
        return f"object name {name!r} is reserved by GCS — rename the file or change the prefix"
    return None


class GcsIntegrityError(GcpError):
    """The object the server stored differs from the local file."""

    def __init__(self, message, stored):
        super().__init__(message)
        self.stored = stored or {}


def check_stored(stored, bucket, name, size, md5_b64):
    """Raise GcsIntegrityError unless the stored object has the local file's size and MD5."""
    stored = stored or {}
    have_size = stored.get("size")
    have_md5 = stored.get("md5Hash")
    if have_size is not None and int(have_size) == size and have_md5 == md5_b64:
        return
    raise GcsIntegrityError(
        f"gs://{bucket}/{name}: the server stored {have_size if have_size is not None else 'an unknown number of'} "
        f"bytes with MD5 {have_md5 or 'unknown'}, the local file has {size} bytes with MD5 {md5_b64}", stored)


def persisted_bytes(response, context):
    """Bytes a 308 answer says the server holds: "Range: bytes=0-N" is N+1, no Range header is 0."""
    header = response.headers.get("Range")
    if not header:
        return 0
    match = re.fullmatch(r"bytes=0-(\d+)", header.strip())
    if not match:
        raise GcpError(f"{context}: the server answered 308 with an unexpected Range header {header!r}")
    return int(match.group(1)) + 1


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

    def get_object(self, bucket, name):
        """The object's resource, or None when it does not exist."""
        return self.session.json("GET", f"{self.api}/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}",
                                 allow=(404,), context=f"gs://{bucket}/{name}")

    def upload(self, bucket, name, path, md5_b64, size, if_generation_match=None, content_type=None, metadata=None):
        """Upload one file (multipart up to SIMPLE_UPLOAD_LIMIT, resumable above) and return the stored object.

        The object the server reports is compared with the local file (size and MD5): GcsIntegrityError
        when they differ, so a corrupt object is never taken as done.
        """
        content_type = content_type or "application/octet-stream"
        params = {}
        if if_generation_match is not None:
            params["ifGenerationMatch"] = str(if_generation_match)
        context = f"uploading {path} to gs://{bucket}/{name}"
        resource = {"name": name, "md5Hash": md5_b64, "contentType": content_type, "metadata": metadata or {}}
        try:
            if size <= SIMPLE_UPLOAD_LIMIT:
                stored = self._multipart_upload(bucket, path, resource, content_type, params, context)
            else:
                stored = self._resumable_upload(bucket, path, size, resource, content_type, params, context)
        except OSError as exc:
            raise GcpError(f"{path}: cannot be read ({exc.strerror or exc}) while uploading it to gs://{bucket}/{name} "
                           "— fix its permissions and run the sync again") from exc
        if not (stored or {}).get("md5Hash"):
            stored = self.get_object(bucket, name) or stored or {}
        check_stored(stored, bucket, name, size, md5_b64)
        return stored

    def _multipart_upload(self, bucket, path, resource, content_type, params, context):
        with open(path, "rb") as handle:
            data = handle.read()
        boundary = "triton_fil_" + hashlib.sha1(resource["name"].encode()).hexdigest()  # not security-relevant
        body = b"".join([
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(resource).encode(),
            f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ])
        return self.session.json(
            "POST", f"{self.upload_api}/b/{quote(bucket, safe='')}/o", params=dict(params, uploadType="multipart"),
            data=body, headers={"Content-Type": f"multipart/related; boundary={boundary}"}, context=context,
        )

    # -- resumable uploads ----------------------------------------------------------------------
    # The protocol as https://cloud.google.com/storage/docs/performing-resumable-uploads describes it:
    # each chunk PUT carries "Content-Range: bytes FIRST-LAST/TOTAL" and is answered 308 with
    # "Range: bytes=0-N" (the bytes the server persisted, which may be fewer than were sent; no Range
    # header: none yet) until the last one is answered 200/201 with the object. A chunk whose answer
    # is lost (5xx, 429, timeout, dropped connection) is never re-sent blindly: the session is asked
    # for its state with an empty PUT "Content-Range: bytes */TOTAL" ("check the status of a
    # resumable upload") and the upload resumes at the byte after the server's Range. A session the
    # server no longer knows (404 or 410) is started over with a new one. The same decisions as
    # google-resumable-media-python (_upload.py: _process_resumable_response takes the offset from the
    # Range header, _prepare_recover_request sends the empty status PUT) and gsutil
    # (gslib/gcs_json_api.py: 429/5xx resume the same upload ID, 404/410 start over with a new one).
    def _start_session(self, bucket, size, resource, content_type, params, context):
        start = self.session.request(
            "POST", f"{self.upload_api}/b/{quote(bucket, safe='')}/o", params=dict(params, uploadType="resumable"),
            json=resource, headers={"X-Upload-Content-Type": content_type, "X-Upload-Content-Length": str(size)},
            context=context,
        )
        session_url = start.headers.get("Location")
        if not session_url:
            raise GcpError(f"{context}: the server did not return a resumable upload session URL")
        return session_url

    def _session_status(self, session_url, size, context):
        """The session's state: 308 (Range = what is persisted), 200/201 (done) or 404/410 (gone)."""
        return self.session.request("PUT", session_url, data=b"", headers={"Content-Range": f"bytes */{size}"},
                                    expected=(200, 201, 308), allow=(404, 410),
                                    context=f"{context} (upload status)")

    def _resumable_upload(self, bucket, path, size, resource, content_type, params, context):
        for session_number in range(1, MAX_UPLOAD_SESSIONS + 1):
            session_url = self._start_session(bucket, size, resource, content_type, params, context)
            gone = self._send_chunks(session_url, path, size, context)
            if isinstance(gone, dict):
                return gone
            if session_number == MAX_UPLOAD_SESSIONS:
                raise GcpError(f"{context}: the server dropped the resumable upload session {session_number} times "
                               f"(last HTTP {gone}); nothing was stored — run the sync again")
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_chunks(self, session_url, path, size, context):
        """The stored object (dict) when the upload finished, else the HTTP status of a lost session."""
        offset, interruptions = 0, 0
        with open(path, "rb") as handle:
            while True:
                if offset >= size:
                    raise GcpError(f"{context}: the server holds all {size} bytes but did not finish the object")
                handle.seek(offset)
                chunk = handle.read(RESUMABLE_CHUNK)
                if not chunk:
                    raise GcpError(f"{context}: the file is shorter than when the sync was planned ({size} bytes) — "
                                   "run the sync again")
                end = offset + len(chunk) - 1
                interrupted = False
                try:
                    response = self.session.request(
                        "PUT", session_url, data=chunk, headers={"Content-Range": f"bytes {offset}-{end}/{size}"},
                        expected=(200, 201, 308), allow=(404, 410), retry=False, context=context,
                    )
                except (GcpConnectionError, GcpApiError) as exc:
                    if isinstance(exc, GcpApiError) and not exc.retryable:
                        raise
                    interrupted = True
                    interruptions += 1
                    if interruptions > self.session.max_retries:
                        raise GcpError(f"{context}: {interruptions} chunks in a row were interrupted at byte {offset} "
                                       f"of {size}; last: {exc}") from exc
                    self.session.backoff(interruptions - 1)
                    response = self._session_status(session_url, size, context)
                if response.status_code in (404, 410):
                    return response.status_code
                if response.status_code in (200, 201):
                    return response.json() if response.content else {}
                persisted = persisted_bytes(response, context)
                if persisted > offset:
                    interruptions = 0
                elif not interrupted:  # answered, yet nothing more persisted: bounded like interruptions
                    interruptions += 1
                    if interruptions > self.session.max_retries:
                        raise GcpError(f"{context}: the server keeps answering 308 without persisting more than "
                                       f"{persisted} of {size} bytes")
                offset = persisted

    def delete_object(self, bucket, name, generation=None):
        params = {"ifGenerationMatch": str(generation)} if generation else {}
        self.session.request("DELETE", f"{self.api}/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}",
                             params=params, expected=(200, 204), allow=(404,),
                             context=f"deleting gs://{bucket}/{name}")
