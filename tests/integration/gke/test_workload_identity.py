"""gcp_workload_identity and the workload_identity role through ansible-playbook against the IAM simulator."""

from __future__ import annotations

import pytest
import yaml

from local_stack.simulators.iam import IamSimulator

TOKEN = "ya29.FAKE-iam-token-must-never-print-51c9"
PROJECT = "sim-project"
BUCKET = "sim-project-models"
TRITON = f"serviceAccount:triton-fil@{PROJECT}.iam.gserviceaccount.com"
POOL_MEMBER = "serviceAccount:" + PROJECT + ".svc.id.goog[{}]"

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: wi
      rapids.triton_fil.gcp_workload_identity:
        name: triton-fil
        display_name: "{{ display_name | default('Triton FIL inference server') }}"
        project_roles: "{{ project_roles | default(['roles/monitoring.viewer']) }}"
        bucket_roles: "{{ bucket_roles | default([{'bucket': 'sim-project-models', 'role': 'roles/storage.objectViewer'}]) }}"
        kubernetes_service_accounts: "{{ ksas | default(['triton/triton-fil']) }}"
        state: "{{ state | default('present') }}"
        delete_account: "{{ delete_account | default(false) }}"
        project: sim-project
        auth_kind: accesstoken
        access_token: "{{ token }}"
        iam_endpoint: "{{ urls.iam }}"
        resourcemanager_endpoint: "{{ urls.resourcemanager }}"
        storage_endpoint: "{{ urls.storage }}"
"""


@pytest.fixture
def iam():
    sim = IamSimulator().serve()
    sim.add_bucket(BUCKET, PROJECT)
    try:
        yield sim
    finally:
        sim.close()
    # Every body the module sent is valid per Google's discovery documents, and every write had an etag.
    assert sim.schema_rejections == [], f"requests rejected by the discovery schema: {sim.schema_rejections}"
    assert sim.blind_writes == 0, "a setIamPolicy without the etag that was read could overwrite others' changes"


def ev(iam, **extra):
    return {"urls": iam.urls, "token": TOKEN, **extra}


def writes(iam):
    return [r[3] for r in iam.write_calls()]


def accepted_writes(iam):
    """Writes IAM carried out (a new account's bindings are refused until it has propagated)."""
    return [r[3] for r in iam.write_calls() if r[4] == 200]


def test_create_idempotent_preserves_others_heals_conflicts_and_absent_keeps_the_account(ansible, iam):
    iam.add_member(("project", PROJECT), "roles/monitoring.viewer", "user:alice@example.com")
    # A conditional grant of the same role grants less: it is neither counted nor touched, and stays.
    conditional = {"role": "roles/monitoring.viewer", "members": ["user:dave@example.com"],
                   "condition": {"title": "until 2030", "expression": 'request.time < timestamp("2030-01-01T00:00:00Z")'}}
    iam.policies[("project", PROJECT)]["bindings"].append(conditional)
    iam.policies[("project", PROJECT)]["version"] = 3

    plan = ansible(PLAY, extra_vars=ev(iam), check=True, diff=True)
    assert plan.rc == 0 and plan.changed == 1, plan.stdout[-3000:]
    assert writes(iam) == [], "check mode must not write"
    planned = plan.result("wi")
    assert planned["unique_id"] is None and planned["email"] == f"triton-fil@{PROJECT}.iam.gserviceaccount.com"
    assert {(c["resource"], c.get("role")) for c in planned["changes"]} == {
        (f"serviceAccounts/triton-fil@{PROJECT}.iam.gserviceaccount.com", None),
        (f"projects/{PROJECT}", "roles/monitoring.viewer"), (f"buckets/{BUCKET}", "roles/storage.objectViewer"),
        (f"serviceAccounts/triton-fil@{PROJECT}.iam.gserviceaccount.com", "roles/iam.workloadIdentityUser")}
    # The changes have the shape of every module's changes: field, before, after, then the IAM details.
    assert all({"field", "before", "after"} <= set(c) and (c["before"], c["after"]) == ("absent", "present")
               for c in planned["changes"]), planned["changes"]

    first = ansible(PLAY, extra_vars=ev(iam), diff=True)
    assert first.rc == 0, first.stdout[-3000:]
    result = first.result("wi")
    assert result["unique_id"] and result["account"]["display_name"] == "Triton FIL inference server"
    assert sorted(accepted_writes(iam)) == sorted(["iam.projects.serviceAccounts.create",
                                                   "cloudresourcemanager.projects.setIamPolicy",
                                                   "storage.buckets.setIamPolicy",
                                                   "iam.projects.serviceAccounts.setIamPolicy"])
    assert iam.members(("project", PROJECT), "roles/monitoring.viewer") == sorted(["user:alice@example.com", TRITON])
    assert iam.members(("project", PROJECT), "roles/owner") == ["user:owner@example.com"]
    assert iam.members(("bucket", BUCKET), "roles/storage.objectViewer") == [TRITON]
    assert iam.members(("bucket", BUCKET), "roles/storage.legacyBucketReader") == [f"projectViewer:{PROJECT}"]
    email = result["email"]
    assert iam.members(("account", email), "roles/iam.workloadIdentityUser") == [POOL_MEMBER.format("triton/triton-fil")]

    iam.reset_log()
    second = ansible(PLAY, extra_vars=ev(iam))
    assert second.rc == 0 and second.changed == 0, second.stdout[-3000:]
    assert writes(iam) == [], "a converged account needs 0 writes"

    # Someone else changes the project and bucket policies between our read and our write: the
    # stale etag is refused (409 ABORTED / 412) and the read-modify-write is repeated, keeping theirs.
    iam.reset_log()
    iam.inject("concurrent", match="projects.setIamPolicy", role="roles/viewer", member="user:bob@example.com")
    iam.inject("concurrent", match="buckets.setIamPolicy", role="roles/storage.objectAdmin",
               member="user:carol@example.com")
    more = {"project_roles": ["roles/monitoring.viewer", "roles/logging.logWriter"],
            "bucket_roles": [{"bucket": BUCKET, "role": "roles/storage.objectViewer"},
                             {"bucket": BUCKET, "role": "roles/storage.legacyBucketReader"}]}
    healed = ansible(PLAY, extra_vars=ev(iam, **more))
    assert healed.rc == 0, healed.stdout[-3000:]
    assert healed.result("wi")["conflicts_retried"] == 2
    statuses = [r[4] for r in iam.calls("setIamPolicy")]
    assert statuses.count(409) == 1 and statuses.count(412) == 1 and statuses.count(200) == 2
    assert iam.members(("project", PROJECT), "roles/viewer") == ["user:bob@example.com"]
    assert iam.members(("project", PROJECT), "roles/logging.logWriter") == [TRITON]
    assert iam.members(("bucket", BUCKET), "roles/storage.objectAdmin") == ["user:carol@example.com"]
    assert TRITON in iam.members(("bucket", BUCKET), "roles/storage.legacyBucketReader")

    # absent removes only the pairs this task names and keeps the account.
    iam.reset_log()
    gone = ansible(PLAY, extra_vars=ev(iam, state="absent"), diff=True)
    assert gone.rc == 0 and gone.changed == 1, gone.stdout[-3000:]
    assert "iam.projects.serviceAccounts.delete" not in writes(iam)
    assert email in iam.accounts
    assert iam.members(("project", PROJECT), "roles/monitoring.viewer") == ["user:alice@example.com"]
    assert iam.members(("project", PROJECT), "roles/logging.logWriter") == [TRITON], "not named: kept"
    assert iam.members(("project", PROJECT), "roles/viewer") == ["user:bob@example.com"]
    assert iam.members(("bucket", BUCKET), "roles/storage.objectViewer") == []
    project_policy = iam.policies[("project", PROJECT)]
    assert conditional in project_policy["bindings"] and project_policy["version"] == 3
    assert TRITON in iam.members(("bucket", BUCKET), "roles/storage.legacyBucketReader"), "not named: kept"
    assert iam.members(("account", email), "roles/iam.workloadIdentityUser") == []
    diff = gone.result("wi")["diff"]
    assert diff["before"][f"projects/{PROJECT}"]["roles/monitoring.viewer"] == sorted(["user:alice@example.com", TRITON])
    assert diff["after"][f"projects/{PROJECT}"]["roles/monitoring.viewer"] == ["user:alice@example.com"]

    iam.reset_log()
    again = ansible(PLAY, extra_vars=ev(iam, state="absent"))
    assert again.rc == 0 and again.changed == 0 and writes(iam) == []

    deleted = ansible(PLAY, extra_vars=ev(iam, state="absent", delete_account=True))
    assert deleted.rc == 0 and deleted.changed == 1
    assert email not in iam.accounts


def test_transient_faults_and_iam_propagation_heal_and_the_token_is_never_printed(ansible, iam):
    iam.propagation_seconds = 0  # the propagation answers are injected one by one below, to count them
    iam.inject("drop", count=1, match="serviceAccounts.create")
    iam.inject("status", 503, count=2, match="getIamPolicy")
    iam.inject("status", 429, count=1, match="storage.buckets")
    # ... and 404 for the policy of an account created moments ago.
    iam.inject("status", 404, count=1, match="serviceAccounts.getIamPolicy", message="Unknown service account")
    # IAM answers "does not exist" for a service account created moments ago until it has propagated.
    iam.inject("status", 400, count=1, match="projects.setIamPolicy",
               message=f"Service account triton-fil@{PROJECT}.iam.gserviceaccount.com does not exist.")
    run = ansible(PLAY, extra_vars=ev(iam), verbosity=3, callback="default", diff=True)
    assert run.rc == 0, run.stdout[-3000:]
    assert TOKEN not in run.stdout and TOKEN not in run.stderr
    assert "roles/iam.workloadIdentityUser" in run.stdout, "the --diff shows the bindings"
    statuses = [r[4] for r in iam.requests]
    assert statuses.count(503) == 2 and statuses.count(429) == 1 and statuses.count(400) == 1 and None in statuses
    assert [r[4] for r in iam.calls("serviceAccounts.getIamPolicy")][:2] == [404, 200]
    assert TRITON in iam.members(("project", PROJECT), "roles/monitoring.viewer")
    iam.reset_log()
    assert ansible(PLAY, extra_vars=ev(iam)).changed == 0 and writes(iam) == []


@pytest.mark.parametrize("case", ["create answer lost", "only kubernetes service accounts"])
def test_a_new_account_is_bound_once_iam_has_propagated_it(ansible, iam, case):
    """For seconds after its create IAM answers 403 "(or it may not exist)" for the account and its
    own policy (and 400 "does not exist" for other policies naming it): the module waits it out,
    both when it reads the account after a create whose answer was lost and when the account's own
    policy is the first one it touches."""
    iam.propagation_seconds = 3.0
    extra = {}
    if case == "create answer lost":
        iam.inject("lose_response", match="serviceAccounts.create")
    else:
        extra = {"project_roles": [], "bucket_roles": []}
    run = ansible(PLAY, extra_vars=ev(iam, **extra))
    assert run.rc == 0, run.stdout[-3000:]
    statuses = {}
    for r in iam.requests:
        statuses.setdefault(r[3], []).append(r[4])
    if case == "create answer lost":
        assert statuses["iam.projects.serviceAccounts.create"] == [None, 409], "the create's answer was lost"
        assert 403 in statuses["iam.projects.serviceAccounts.get"], "read before IAM had propagated it"
        assert TRITON in iam.members(("project", PROJECT), "roles/monitoring.viewer")
    else:
        assert 403 in statuses["iam.projects.serviceAccounts.getIamPolicy"], "its policy read before propagation"
    assert POOL_MEMBER.format("triton/triton-fil") in iam.members(
        ("account", f"triton-fil@{PROJECT}.iam.gserviceaccount.com"), "roles/iam.workloadIdentityUser")


def test_problems_are_named_before_any_call_and_a_missing_bucket_fails_clearly(ansible, iam):
    bad = ansible(PLAY, extra_vars=ev(iam, project_roles=["monitoring.viewer"], ksas=["triton"],
                                      bucket_roles=[{"bucket": "gs://x", "role": "roles/storage.objectViewer"}]))
    assert bad.rc != 0
    msg = bad.result("wi")["msg"]
    assert "project_roles: 'monitoring.viewer' is not a role name" in msg
    assert "kubernetes_service_accounts: 'triton' must be NAMESPACE/NAME" in msg and "drop the 'gs://' prefix" in msg
    assert iam.requests == []

    nowhere = [{"bucket": "no-such-bucket", "role": "roles/storage.objectViewer"}]
    missing = ansible(PLAY, extra_vars=ev(iam, bucket_roles=nowhere))
    assert missing.rc != 0
    assert "buckets/no-such-bucket does not exist: create the bucket first" in missing.result("wi")["msg"]

    iam.inject("status", 403, match="projects.getIamPolicy", message="The caller does not have permission")
    denied = ansible(PLAY, extra_vars=ev(iam))
    assert denied.rc != 0
    msg = denied.result("wi")["msg"]
    assert "IAM policy of projects/sim-project" in msg and "403 PERMISSION_DENIED" in msg
    assert "roles/resourcemanager.projectIamAdmin" in msg

    iam.workload_pools = set()  # no GKE cluster with Workload Identity in the project yet
    nopool = ansible(PLAY, extra_vars=ev(iam))
    assert nopool.rc != 0
    msg = nopool.result("wi")["msg"]
    assert f"Identity Pool does not exist ({PROJECT}.svc.id.goog)" in msg and "converge the cluster" in msg


ROLE_PLAY = """
- hosts: triton_fil
  gather_facts: false
  roles:
    - role: rapids.triton_fil.workload_identity
  post_tasks:
    - name: facts
      ansible.builtin.debug:
        msg: "{{ triton_fil_workload_identity }}"
"""


def inventory(tmp_path, iam, **extra):
    host = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "gcp_project": PROJECT, "gcp_auth_kind": "accesstoken", "gcp_access_token": TOKEN,
            "gcs_models_bucket": BUCKET, "workload_identity_iam_endpoint": iam.urls["iam"],
            "workload_identity_resourcemanager_endpoint": iam.urls["resourcemanager"],
            "workload_identity_storage_endpoint": iam.urls["storage"], **extra}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"triton_fil": {"hosts": {"sim-deploy": host}}}))
    return path


def test_role_binds_the_triton_pods_and_the_metrics_adapter(ansible, iam, tmp_path):
    inv = inventory(tmp_path, iam)
    first = ansible(ROLE_PLAY, inventory=inv)
    assert first.rc == 0, first.stdout[-3000:]
    triton = f"triton-fil@{PROJECT}.iam.gserviceaccount.com"
    metrics = f"triton-fil-metrics@{PROJECT}.iam.gserviceaccount.com"
    assert first.result("facts")["msg"] == {"triton": triton, "metrics": metrics}
    assert iam.members(("bucket", BUCKET), "roles/storage.objectViewer") == [f"serviceAccount:{triton}"]
    assert iam.members(("project", PROJECT), "roles/monitoring.viewer") == [f"serviceAccount:{metrics}"]
    assert iam.members(("account", triton), "roles/iam.workloadIdentityUser") == [POOL_MEMBER.format("triton/triton-fil")]
    assert iam.members(("account", metrics), "roles/iam.workloadIdentityUser") == [
        POOL_MEMBER.format("custom-metrics/custom-metrics-stackdriver-adapter")]
    assert TOKEN not in first.stdout

    iam.reset_log()
    second = ansible(ROLE_PLAY, inventory=inv)
    assert second.rc == 0 and second.changed == 0
    assert writes(iam) == []

    renamed = inventory(tmp_path, iam, triton_helm_release="fil", triton_helm_namespace="serving",
                        triton_helm_gcp_service_account=f"fil-reader@{PROJECT}.iam.gserviceaccount.com")
    follows = ansible(ROLE_PLAY, inventory=renamed)
    assert follows.rc == 0, follows.stdout[-3000:]
    assert iam.members(("account", f"fil-reader@{PROJECT}.iam.gserviceaccount.com"),
                       "roles/iam.workloadIdentityUser") == [POOL_MEMBER.format("serving/fil")]

    elsewhere = ansible(ROLE_PLAY, inventory=inventory(
        tmp_path, iam, triton_helm_gcp_service_account="triton-fil@other-project.iam.gserviceaccount.com"))
    assert elsewhere.rc != 0
    assert ("triton_helm_gcp_service_account: 'triton-fil@other-project.iam.gserviceaccount.com' is not the account "
            f"workload_identity creates (triton-fil@{PROJECT}.iam.gserviceaccount.com)") in elsewhere.stdout
