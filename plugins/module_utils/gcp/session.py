# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""One authenticated, retrying HTTP session for every Google API the collection calls.

Credentials come only from google-auth (ADC, key file or contents, access token, optional
impersonation); gcloud is never run. Requests that fail with 429, 5xx or a dropped connection
are retried with exponential backoff and full jitter, honouring Retry-After.
"""

from __future__ import annotations

import json
import os
import random
import time

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.spec import (  # noqa: F401  # pylint: disable=unused-import  # re-exported
    CLOUD_PLATFORM_SCOPE, gcp_argument_spec,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.backoff import RETRYABLE_STATUS, Backoff
from ansible_collections.rapids.triton_fil.plugins.module_utils.redact import scrub

try:
    import requests
    import google.auth
    import google.auth.credentials
    import google.auth.exceptions
    import google.auth.impersonated_credentials
    import google.oauth2.credentials
    import google.oauth2.service_account
    from google.auth.transport.requests import AuthorizedSession, Request
    HAS_GOOGLE_AUTH = True
    GOOGLE_AUTH_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_GOOGLE_AUTH = False
    GOOGLE_AUTH_IMPORT_ERROR = exc


class GcpError(TritonFilError):
    """A failure with a message fit for fail_json: it names the resource and the fix."""


class GcpApiError(GcpError):
    """An HTTP error answered by a Google API (or an emulator speaking its protocol)."""

    def __init__(self, method, url, status, reason, message, context=None):
        self.method = method
        self.url = url
        self.status = status
        self.reason = reason
        self.api_message = message
        self.context = context
        where = f"{context}: " if context else ""
        super().__init__(f"{where}{method} {url} answered {status} {reason}: {message}")

    @property
    def retryable(self):
        return self.status in RETRYABLE_STATUS


class GcpConnectionError(GcpError):
    """The connection failed or timed out (no HTTP status): the request may or may not have been applied."""


def parse_google_error(response):
    """Return (reason, message) from a Google JSON error body, tolerating non-JSON bodies."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or "ERROR", (response.text or "").strip()[:500]
    error = body.get("error", body) if isinstance(body, dict) else {}
    if isinstance(error, str):
        return error, str(body.get("error_description", ""))
    reason = error.get("status") or ""
    details = error.get("errors") or []
    if not reason and details:
        reason = details[0].get("reason", "")
    return reason or response.reason or "ERROR", error.get("message", "")


def build_credentials(params):
    """google-auth credentials for the module parameters; raises GcpError naming the option."""
    if not HAS_GOOGLE_AUTH:
        raise GcpError(f"google-auth and requests are required: {GOOGLE_AUTH_IMPORT_ERROR}")
    kind = params.get("auth_kind") or "application"
    scopes = params.get("scopes") or [CLOUD_PLATFORM_SCOPE]
    if kind == "anonymous":
        return google.auth.credentials.AnonymousCredentials()
    if kind == "accesstoken":
        if not params.get("access_token"):
            raise GcpError("auth_kind=accesstoken needs access_token (or GCP_ACCESS_TOKEN) to be set")
        creds = google.oauth2.credentials.Credentials(params["access_token"])
    elif kind == "serviceaccount":
        path, contents = params.get("service_account_file"), params.get("service_account_contents")
        if contents:
            info = json.loads(contents) if isinstance(contents, str) else contents
            try:
                creds = google.oauth2.service_account.Credentials.from_service_account_info(info, scopes=scopes)
            except (ValueError, KeyError) as exc:
                raise GcpError(f"service_account_contents is not a service-account key: {exc}") from exc
        elif path:
            if not os.path.isfile(path):
                raise GcpError(f"service_account_file {path!r} does not exist; give the path of a JSON key")
            try:
                creds = google.oauth2.service_account.Credentials.from_service_account_file(path, scopes=scopes)
            except (ValueError, KeyError) as exc:
                raise GcpError(f"service_account_file {path!r} is not a service-account key: {exc}") from exc
        else:
            raise GcpError("auth_kind=serviceaccount needs service_account_file or service_account_contents")
    else:
        try:
            creds, _project = google.auth.default(scopes=scopes)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise GcpError(
                "auth_kind=application found no Application Default Credentials: run "
                "'gcloud auth application-default login', set GOOGLE_APPLICATION_CREDENTIALS, "
                f"or choose another auth_kind ({exc})"
            ) from exc
    target = params.get("impersonate_service_account")
    if target:
        creds = google.auth.impersonated_credentials.Credentials(
            source_credentials=creds, target_principal=target, target_scopes=scopes
        )
    return creds


class GcpSession:
    """Authenticated requests with retries; one per module run."""

    def __init__(self, params, *, sleep=time.sleep, rng=random.random, base_delay=0.5, max_delay=32.0):
        self.params = params
        self.timeout = float(params.get("request_timeout") or 60)
        self.max_retries = int(params.get("max_retries") if params.get("max_retries") is not None else 6)
        self.retry = Backoff(sleep=sleep, rng=rng, base_delay=base_delay, max_delay=max_delay)
        self._credentials = None
        self._session = None
        self.calls = []  # (method, url, status) of every attempt, for results and tests

    @property
    def credentials(self):
        if self._credentials is None:
            self._credentials = build_credentials(self.params)
        return self._credentials

    @property
    def http(self):
        if self._session is None:
            self._session = AuthorizedSession(self.credentials)
        return self._session

    def token(self):
        """A fresh access token for non-HTTP consumers (kubeconfig, registry login). Never log it."""
        creds = self.credentials
        if isinstance(creds, google.auth.credentials.AnonymousCredentials):
            return None
        if not creds.valid:
            try:
                creds.refresh(Request())
            except google.auth.exceptions.RefreshError as exc:
                raise GcpError(f"could not obtain an access token with auth_kind={self.params.get('auth_kind')}: {exc}") from exc
        return creds.token

    def backoff(self, attempt):
        """Sleep as before retry number attempt (0-based): for callers that retry on their own terms."""
        self.retry.wait(attempt)

    def _secrets(self):
        creds = self._credentials
        return [getattr(creds, "token", None), self.params.get("access_token")] if creds is not None else \
            [self.params.get("access_token")]

    def request(self, method, url, *, context=None, expected=(200,), allow=(), retry=True, **kwargs):
        """Send one request, retrying transient failures (with retry=False: one attempt).

        Returns the response when its status is in ``expected`` or ``allow`` (``allow`` lets a caller
        treat 404 as "absent" without an exception). Raises GcpApiError otherwise (``retryable`` tells a
        transient status), GcpConnectionError when the connection keeps failing or times out.
        """
        kwargs.setdefault("timeout", self.timeout)
        last_error = None
        attempts = self.max_retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = self.http.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self.calls.append((method, url, None))
                last_error = exc
                if attempt < attempts - 1:
                    self.retry.wait(attempt)
                    continue
                where = f"{context}: " if context else ""
                raise GcpConnectionError(
                    f"{where}{method} {url} failed after {attempt + 1} attempt{'s' if attempt else ''}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            except google.auth.exceptions.RefreshError as exc:
                raise GcpError(f"could not refresh credentials (auth_kind={self.params.get('auth_kind')}): {exc}") from exc
            self.calls.append((method, url, response.status_code))
            if response.status_code in expected or response.status_code in allow:
                return response
            if response.status_code in RETRYABLE_STATUS and attempt < attempts - 1:
                self.retry.wait(attempt, response)
                continue
            reason, message = parse_google_error(response)
            # A hostile or broken server may echo the request's Authorization header in its body.
            raise GcpApiError(method, url, response.status_code, scrub(reason, self._secrets()),
                              scrub(message, self._secrets()), context)
        raise GcpError(f"{method} {url}: retries exhausted ({last_error})")  # pragma: no cover

    def json(self, method, url, **kwargs):
        """request() and decode the JSON body (None for 204 or an empty body or an allowed 404)."""
        response = self.request(method, url, **kwargs)
        if response.status_code == 404 or not response.content:
            return None
        return response.json()

    @property
    def write_calls(self):
        return [c for c in self.calls if c[0] not in ("GET", "HEAD")]
