"""Helpers of the rehearsal tests: site.yml on the rehearsal inventory, the control endpoint, API clients."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml


from testlib import REPO, run_playbook

INVENTORY = REPO / "inventories" / "rehearsal"
SITE = REPO / "playbooks" / "site.yml"
SUMMARY = "One line per deployment (a failed one does not stop the others)"
HELM3 = REPO / ".tools" / "bin" / "helm"  # helm 3.17 (scripts/bootstrap.sh)
HELM4 = REPO / ".tools" / "bin" / "helm4"  # helm 4.1, from the kubectl-v35 wheel
ROLE_PLAY = """
- hosts: triton_fil
  gather_facts: false
  vars:
    triton_fil_kubeconfig: "{{ kubeconfig }}"
    triton_fil_kube_context: "{{ context }}"
  roles:
    - role: rapids.triton_fil.ROLE
"""


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


def role(env, name, tmp_path, identity="creator", **extra):
    """One role of the collection against the rehearsal's cluster, as one of its identities."""
    path, context = kubeconfig_of(env, identity)
    # The facts of gke_cluster that the chart values read (site.yml's run sets them), so a role run here
    # renders the same values and leaves the release as site.yml made it.
    # The same holds for model_rollout's: the models Triton loads at start, as site.yml's release names them.
    cluster = {"name": "triton-fil", "location": "us-central1-a", "project": env["TRITON_FIL_PROJECT"]}
    facts = {"triton_fil_cluster": cluster}
    served = served_models(env)
    if served:
        facts["triton_fil_served_models"] = served
    return run_playbook(ROLE_PLAY.replace("ROLE", name), inventory=INVENTORY, tmp_path=tmp_path,
                        env={**env, "TRITON_FIL_REHEARSAL_IDENTITY": identity},
                        extra_vars={"kubeconfig": str(path), "context": context, **facts, **extra})


def served_models(env):
    """The --load-model names of site.yml's Triton release, or [] before it exists."""
    import kubernetes  # pylint: disable=import-outside-toplevel
    try:
        container = deployment(env).spec.template.spec.containers[0]
    except kubernetes.client.ApiException:
        return []
    return [a.split("=", 1)[1] for a in container.args if a.startswith("--load-model=")]


def helm(env, *args, binary=HELM3):
    """helm as the cluster's creator; its stdout."""
    path, context = kubeconfig_of(env, "creator")
    # The environment of the tests besides the stack's: without HOME, helm's discovery cache
    # ($HOME/.kube/cache) would land in the working directory.
    proc = subprocess.run([str(binary), "--kubeconfig", str(path), "--kube-context", context, *args],
                          capture_output=True, text=True, env={**os.environ, **env}, check=True, timeout=120)
    return proc.stdout


def deployment(env, namespace="triton", name="triton-fil"):
    import kubernetes  # pylint: disable=import-outside-toplevel
    return kubernetes.client.AppsV1Api(admin_client(env)).read_namespaced_deployment(name, namespace)


def image_and_models(env):
    """The image and model repository of the release site.yml installed."""
    container = deployment(env).spec.template.spec.containers[0]
    models = next(a for a in container.args if a.startswith("--model-repository="))
    return container.image, models.split("=", 1)[1]
