"""Helpers of the rehearsal tests: site.yml on the rehearsal inventory, the control endpoint, API clients."""

from __future__ import annotations

import json

import time
import urllib.request
from pathlib import Path

import yaml


from testlib import REPO, run_playbook

INVENTORY = REPO / "inventories" / "rehearsal"
SITE = REPO / "playbooks" / "site.yml"
SUMMARY = "One line per deployment (a failed one does not stop the others)"


def site(env, identity="creator", **kwargs):
    return run_playbook(SITE, inventory=INVENTORY, env={**env, "TRITON_FIL_REHEARSAL_IDENTITY": identity},
                        timeout=900, **kwargs)


def summary(run):
    return run.result(SUMMARY)["results"][0]["msg"]


def control(env, path, body=None):
    request = urllib.request.Request(env["TRITON_FIL_REHEARSAL_CONTROL"] + path,
                                     data=None if body is None else json.dumps(body).encode(),
                                     method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def kube_client(env, identity="deployer", scopes=("https://www.googleapis.com/auth/cloud-platform",
                                                  "https://www.googleapis.com/auth/userinfo.email")):
    """A kubernetes ApiClient authenticated with a google-auth token of one of the rehearsal's identities."""
    import google.auth.transport.requests  # pylint: disable=import-outside-toplevel
    import google.oauth2.service_account  # pylint: disable=import-outside-toplevel
    import kubernetes  # pylint: disable=import-outside-toplevel

    key = env[f"TRITON_FIL_{identity.upper()}_KEY"]
    credentials = google.oauth2.service_account.Credentials.from_service_account_file(key, scopes=list(scopes))
    credentials.refresh(google.auth.transport.requests.Request())
    config = kubernetes.client.Configuration()
    config.host = env["TRITON_FIL_KUBE_SERVER"]
    config.ssl_ca_cert = env["TRITON_FIL_KUBE_CA"]
    config.api_key = {"authorization": f"Bearer {credentials.token}"}
    return kubernetes.client.ApiClient(config)


def admin_client(env):
    import kubernetes  # pylint: disable=import-outside-toplevel
    return kubernetes.config.new_client_from_config(config_file=env["TRITON_FIL_KUBE_ADMIN"])


def wait_until(predicate, timeout, what, interval=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not after {timeout}s (last: {last!r})")


def kubeconfig_of(env, identity):
    """The kubeconfig gke_kubeconfig wrote for an identity's site.yml run (exec plugin, real plugin)."""
    path = Path(env["TRITON_FIL_RUN_DIR"]) / "kube" / f"{identity}.yaml"
    config = yaml.safe_load(path.read_text())
    return path, config["current-context"]
