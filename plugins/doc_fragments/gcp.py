# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Shared options of every module that talks to a Google Cloud API."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  project:
    description:
      - The Google Cloud project ID.
      - Falls back to the E(GCP_PROJECT) environment variable.
    type: str
  auth_kind:
    description:
      - How to obtain credentials. All tokens come from C(google-auth); C(gcloud) is never run.
      - V(application) uses Application Default Credentials (E(GOOGLE_APPLICATION_CREDENTIALS),
        the gcloud ADC file, or the metadata server / Workload Identity).
      - V(serviceaccount) reads a service-account key from O(service_account_file) or
        O(service_account_contents).
      - V(accesstoken) uses O(access_token) as it is.
      - V(anonymous) sends no credentials; only for emulators such as fake-gcs-server.
      - Falls back to E(GCP_AUTH_KIND).
    type: str
    choices: [application, serviceaccount, accesstoken, anonymous]
    default: application
  service_account_file:
    description:
      - Path to a service-account JSON key, with O(auth_kind=serviceaccount).
      - Falls back to E(GCP_SERVICE_ACCOUNT_FILE).
    type: path
  service_account_contents:
    description:
      - The service-account JSON key itself (for example from Ansible Vault), with
        O(auth_kind=serviceaccount).
      - Falls back to E(GCP_SERVICE_ACCOUNT_CONTENTS).
    type: jsonarg
  access_token:
    description:
      - An OAuth2 access token, with O(auth_kind=accesstoken).
      - Falls back to E(GCP_ACCESS_TOKEN).
    type: str
  impersonate_service_account:
    description:
      - Email of a service account to impersonate with the base credentials
        (needs C(roles/iam.serviceAccountTokenCreator) on it).
    type: str
  scopes:
    description:
      - OAuth2 scopes to request.
    type: list
    elements: str
    default: ['https://www.googleapis.com/auth/cloud-platform']
  request_timeout:
    description:
      - Seconds to wait for one HTTP request before it is retried.
    type: float
    default: 60
  max_retries:
    description:
      - How many times a request that failed with 429, 5xx or a dropped connection is retried,
        with exponential backoff and jitter.
    type: int
    default: 6
notes:
  - Credentials, tokens and key contents are never returned or logged; the options that carry
    them are C(no_log).
"""
