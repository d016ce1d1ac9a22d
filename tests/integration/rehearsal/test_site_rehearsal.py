"""site.yml on a GKE target against the real local control plane: verified, converged, least privilege.

Every Kubernetes call goes to a real kube-apiserver (RBAC and IAM-after-RBAC authorization, Google tokens by
webhook, the aggregation layer, admission), Triton runs as kwok pods whose ports forward to the local
tritonserver, and helm is the real helm. Writes are counted at every server: the simulators' request logs,
fake-gcs-server's and the registry's access logs, and the API server's audit log.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from rehearsal_lib import control, kube_client, site, summary
from testlib import REPO

pytestmark = [pytest.mark.slow, pytest.mark.rehearsal]


def test_first_run_is_verified_through_the_real_api_server(converged):
    assert summary(converged) == "rehearsal: VERIFIED at http://triton-fil.triton.svc.cluster.local:8000"
    report = converged.result("Verify report")["msg"]
    assert "through a port-forward to pod triton/triton-fil-" in report[0], report
    assert "8 reference rows MATCHED" in report[1]
    helm = converged.result("Install or upgrade the Triton release (atomic, so a failed upgrade rolls back)")
    assert helm["changed"] and "--atomic" in helm["command"] and "--wait" in helm["command"]


def test_second_run_changes_nothing_and_writes_nowhere(rehearsal, converged):
    control(rehearsal, "/mark", {})
    second = site(rehearsal)
    assert second.rc == 0 and second.changed == 0, (second.changed_tasks(), second.stdout[-2000:])
    writes = control(rehearsal, "/writes")
    assert writes == {"gke": [], "compute": [], "iam": [], "artifact_registry": [], "gcs": [], "registry": [],
                      "kubernetes": []}
    assert summary(second) == summary(converged)


def test_the_deployer_converges_as_itself_without_writing(rehearsal, converged):
    """CI runs site.yml as the deployer: the least-privilege roles suffice to read, compare and verify."""
    control(rehearsal, "/mark", {})
    run = site(rehearsal, identity="deployer")
    assert run.rc == 0, run.stdout[-4000:]
    # Its own kubeconfig file is new (a local file); nothing else changes.
    changed = [t["task"]["name"] for t in run.tasks() if any(h.get("changed") for h in t["hosts"].values())]
    assert changed == ["rapids.triton_fil.gke_cluster : Write the kubeconfig context (get-credentials without gcloud)"]
    assert not any(control(rehearsal, "/writes").values())
    assert summary(run) == "rehearsal: VERIFIED at http://triton-fil.triton.svc.cluster.local:8000"


# What the deployer may do, and what it may not (the seed's cluster-admin, or the previous ClusterRole that
# granted cluster-wide secrets, any APIService and DaemonSets in kube-system).
ALLOWED = [
    ("create", "apps", "deployments", "triton", None),
    ("get", "", "secrets", "triton", None),
    ("create", "", "pods/portforward", "triton", "any-pod"),
    ("list", "", "nodes", None, None),
    ("patch", "apiregistration.k8s.io", "apiservices", None, "v1beta1.external.metrics.k8s.io"),
    ("create", "apiregistration.k8s.io", "apiservices", None, "v1beta1.external.metrics.k8s.io"),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", None, "system:auth-delegator"),
]
REFUSED = [
    ("list", "", "secrets", None, None),
    ("get", "", "secrets", "kube-system", "anything"),
    ("create", "apps", "daemonsets", "kube-system", None),
    ("create", "apiregistration.k8s.io", "apiservices", None, "v1.evil.example.com"),
    ("patch", "apiregistration.k8s.io", "apiservices", None, "v1.apps"),
    ("create", "", "namespaces", None, None),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", None, None),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", None, "cluster-admin"),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", None, "triton-fil-deployer-triton"),
    ("patch", "rbac.authorization.k8s.io", "clusterroles", None, "triton-fil-deployer-triton"),
    ("delete", "", "nodes", None, "any-node"),
    ("create", "apps", "deployments", "default", None),
    ("get", "", "pods/exec", "triton", "any-pod"),
]


def can(client, verb, group, resource, namespace, name):
    import kubernetes  # pylint: disable=import-outside-toplevel
    resource, _slash, subresource = resource.partition("/")
    review = kubernetes.client.V1SelfSubjectAccessReview(spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=kubernetes.client.V1ResourceAttributes(
            verb=verb, group=group, resource=resource, subresource=subresource or None, namespace=namespace,
            name=name)))
    return kubernetes.client.AuthorizationV1Api(client).create_self_subject_access_review(review).status.allowed


def test_the_deployer_is_refused_what_the_roles_do_not_need(rehearsal, converged):
    client = kube_client(rehearsal, "deployer")
    assert [a for a in ALLOWED if not can(client, *a)] == []
    assert [r for r in REFUSED if can(client, *r)] == []


def test_a_token_without_the_email_scope_is_not_the_deployer(rehearsal, converged):
    """GKE names a service account token minted with cloud-platform alone by its numeric ID: RBAC by e-mail
    does not apply, which is why gke_kubeconfig adds userinfo.email."""
    import kubernetes  # pylint: disable=import-outside-toplevel
    bare = kube_client(rehearsal, "deployer", scopes=("https://www.googleapis.com/auth/cloud-platform",))
    with pytest.raises(kubernetes.client.ApiException) as refused:
        kubernetes.client.CoreV1Api(bare).list_namespaced_pod("triton")
    assert refused.value.status == 403
    assert '"triton-fil-deployer@' not in refused.value.body  # named by its numeric ID, not its e-mail
    emailed = kube_client(rehearsal, "deployer")
    assert kubernetes.client.CoreV1Api(emailed).list_namespaced_pod("triton").items


TOKEN_PLAY = """
- hosts: triton_fil
  gather_facts: false
  tasks:
    - name: kubeconfig
      rapids.triton_fil.gke_kubeconfig:
        cluster: triton-fil
        location: us-central1-a
        path: "{{ path }}"
        auth: token
        api_endpoint: "{{ gke_cluster_api_endpoint }}"
        project: "{{ gcp_project }}"
        auth_kind: serviceaccount
        service_account_file: "{{ gcp_service_account_file }}"
    - name: pods
      kubernetes.core.k8s_info:
        kind: Pod
        namespace: triton
        kubeconfig: "{{ path }}"
    - name: secrets elsewhere
      kubernetes.core.k8s_info:
        kind: Secret
        namespace: kube-system
        kubeconfig: "{{ path }}"
      register: elsewhere
      failed_when: false
    - name: refused
      ansible.builtin.assert:
        that: "'Forbidden' in (elsewhere.msg | default('')) or (elsewhere.status | default(0)) == 403"
"""


def test_a_token_kubeconfig_authenticates_the_deployer_by_email(rehearsal, converged, tmp_path):
    """auth=token writes a google-auth token (userinfo.email scope) the real API server maps to the deployer."""
    from rehearsal_lib import INVENTORY  # pylint: disable=import-outside-toplevel
    from testlib import run_playbook  # pylint: disable=import-outside-toplevel
    run = run_playbook(TOKEN_PLAY, inventory=INVENTORY, tmp_path=tmp_path,
                       env={**rehearsal, "TRITON_FIL_REHEARSAL_IDENTITY": "deployer"},
                       extra_vars={"path": str(tmp_path / "token.yaml")})
    assert run.rc == 0, run.stdout[-3000:]
    assert run.result("pods")["resources"], "the deployer lists the Triton pods with its token"


ROLLOUT_TASK = "Roll the model repository out to the serving Triton servers (candidate checked, then switched)"


def test_a_new_version_rolls_out_through_each_pods_tunnel_then_back(rehearsal, converged, tmp_path):
    """Version 2 (generate.py --trees 300) reaches every Ready Triton pod through its own port-forward through
    the real API server, checked as a candidate and switched while clients send requests; the run's summary
    reports it. Rolling the sample back to version 1 leaves the deployment as the other tests found it."""
    repo = tmp_path / "model_repository"
    shutil.copytree(REPO / "model_repository", repo, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    made = subprocess.run([sys.executable, str(REPO / "model_repository" / "generate.py"), "--trees", "300",
                           "--version", "2", "--dest", str(repo)], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    run = site(rehearsal, extra_vars={"gcs_models_src": str(repo),
                                      "verify_reference_file": str(repo / "fil_reference.json")})
    assert run.rc == 0, run.stdout[-5000:]
    result = run.result(ROLLOUT_TASK)
    fil = result["models"]["fil"]
    assert fil["action"] == "rollout" and fil["desired"] == [2], fil
    pods = [s for s in result["servers"] if s["name"].startswith("triton/triton-fil-")]
    assert pods and len(pods) == len(result["servers"]) and all(s["via"] == "tunnel" for s in pods), result["servers"]
    assert set(fil["candidate"]) == set(fil["switch"]) == {s["name"] for s in pods}
    assert all(c["matched"] and c["answered_by"] == "2" for c in fil["candidate"].values())
    assert fil["traffic"]["failed"] == 0 and fil["traffic"]["requests"] > 0, fil["traffic"]
    assert summary(run).endswith(f"rolled out fil: [1] -> [2] on {len(pods)} server(s), 0 of "
                                 f"{fil['traffic']['requests']} requests failed during the switch")

    back = site(rehearsal)
    assert back.rc == 0, back.stdout[-5000:]
    assert back.result(ROLLOUT_TASK)["models"]["fil"]["action"] == "rollout"
    assert summary(back).startswith(summary(converged) + "; rolled out fil: [2] -> [1]")
