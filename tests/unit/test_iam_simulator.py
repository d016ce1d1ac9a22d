"""The IAM simulator holds gcp_workload_identity to Google's contract: it rejects what Google rejects."""

from __future__ import annotations

import time

import pytest
import requests

from local_stack.simulators.iam import IamSimulator

HEADERS = {"Authorization": "Bearer test"}
EMAIL = "triton-fil@p-sim.iam.gserviceaccount.com"


@pytest.fixture
def sim():
    simulator = IamSimulator().serve()
    simulator.add_bucket("models", "p-sim")
    yield simulator
    simulator.close()


def call(sim, api, method, path, body=None, headers=None, **params):
    return requests.request(method, sim.urls[api] + path, json=body, params=params or None, timeout=5,
                            headers=HEADERS if headers is None else headers)


def create(sim, account_id="triton-fil", **extra):
    return call(sim, "iam", "POST", "/v1/projects/p-sim/serviceAccounts", {"accountId": account_id, **extra})


@pytest.mark.parametrize("api,method,path,body,expected", [
    ("iam", "POST", "/v1/projects/p-sim/serviceAccounts", {"accountId": "triton-fil", "displayName": "x"},
     'Unknown name "displayName": Cannot find field.'),
    ("iam", "POST", "/v1/projects/p-sim/serviceAccounts", {"accountId": "triton-fil", "serviceAccount": "x"},
     "Invalid value at 'service_account': Starting an object on a scalar field"),
    ("resourcemanager", "POST", "/v1/projects/p-sim:setIamPolicy",
     {"policy": {"bindings": [{"role": "roles/viewer", "members": "user:a@example.com"}]}},
     "Invalid value at 'policy.bindings[0].members': Proto field is not repeating"),
    ("resourcemanager", "POST", "/v1/projects/p-sim:setIamPolicy", {"policy": {"version": "three"}},
     "Invalid value at 'policy.version' (TYPE_INT64)"),
    ("resourcemanager", "POST", "/v1/projects/p-sim:getIamPolicy", {"options": {"policyVersion": 3}},
     'Unknown name "policyVersion" at \'options\': Cannot find field.'),
    ("storage", "PUT", "/storage/v1/b/models/iam", {"bindings": [{"role": "roles/x", "member": "user:a"}]},
     'Unknown name "member" at \'bindings[0]\''),
    ("iam", "POST", f"/v1/projects/p-sim/serviceAccounts/{EMAIL}:getIamPolicy", {"options": {}},
     'Unknown name "options": Cannot find field.'),
])
def test_request_bodies_are_validated_against_the_discovery_documents(sim, api, method, path, body, expected):
    create(sim)
    response = call(sim, api, method, path, body)
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]["message"], response.json()
    assert sim.schema_rejections


def test_unknown_query_parameters_and_wrong_endpoints_are_refused(sim):
    bad = call(sim, "storage", "GET", "/storage/v1/b/models/iam", requestedPolicyVersion=3)
    assert bad.status_code == 400 and "Cannot bind query parameter" in bad.json()["error"]["message"]
    assert call(sim, "storage", "GET", "/storage/v1/b/models/iam", optionsRequestedPolicyVersion=3).status_code == 200
    # Storage paths live under storage/v1/ (the document's servicePath); IAM calls go to the IAM server only.
    assert call(sim, "storage", "GET", "/b/models/iam").status_code == 404
    assert call(sim, "resourcemanager", "GET", f"/v1/projects/p-sim/serviceAccounts/{EMAIL}").status_code == 404


def test_accounts_policies_and_etags_behave_like_google(sim):
    sim.propagation_seconds = 0  # this test is about etags; propagation has its own below
    unauth = call(sim, "iam", "GET", f"/v1/projects/p-sim/serviceAccounts/{EMAIL}", headers={})
    assert unauth.status_code == 401 and unauth.json()["error"]["status"] == "UNAUTHENTICATED"
    assert call(sim, "iam", "GET", f"/v1/projects/p-sim/serviceAccounts/{EMAIL}").status_code == 404
    assert create(sim, "x").status_code == 400
    account = create(sim, serviceAccount={"displayName": "Triton"}).json()
    assert account["email"] == EMAIL and account["uniqueId"] and account["displayName"] == "Triton"
    again = create(sim)
    assert again.status_code == 409 and again.json()["error"]["status"] == "ALREADY_EXISTS"

    policy = call(sim, "resourcemanager", "POST", "/v1/projects/p-sim:getIamPolicy", {}).json()
    stale = dict(policy, bindings=policy["bindings"] + [{"role": "roles/viewer", "members": [f"serviceAccount:{EMAIL}"]}])
    ok = call(sim, "resourcemanager", "POST", "/v1/projects/p-sim:setIamPolicy", {"policy": stale})
    assert ok.status_code == 200 and ok.json()["etag"] != policy["etag"]
    conflict = call(sim, "resourcemanager", "POST", "/v1/projects/p-sim:setIamPolicy", {"policy": stale})
    assert conflict.status_code == 409 and conflict.json()["error"]["status"] == "ABORTED"
    ghost = dict(ok.json(), bindings=[{"role": "roles/viewer", "members": ["serviceAccount:nobody@p-sim.iam.gserviceaccount.com"]}])
    missing = call(sim, "resourcemanager", "POST", "/v1/projects/p-sim:setIamPolicy", {"policy": ghost})
    assert missing.status_code == 400 and "does not exist" in missing.json()["error"]["message"]

    bucket = call(sim, "storage", "GET", "/storage/v1/b/models/iam").json()
    assert bucket["kind"] == "storage#policy" and bucket["resourceId"] == "projects/_/buckets/models"
    assert call(sim, "storage", "PUT", "/storage/v1/b/models/iam", bucket).status_code == 200
    precondition = call(sim, "storage", "PUT", "/storage/v1/b/models/iam", bucket)
    assert precondition.status_code == 412 and precondition.json()["error"]["errors"][0]["reason"] == "conditionNotMet"
    assert call(sim, "storage", "GET", "/storage/v1/b/nope/iam").status_code == 404

    path = f"/v1/projects/p-sim/serviceAccounts/{EMAIL}"
    sa_policy = call(sim, "iam", "POST", path + ":getIamPolicy", **{"options.requestedPolicyVersion": 3}).json()
    wi = {"role": "roles/iam.workloadIdentityUser", "members": ["serviceAccount:p-sim.svc.id.goog[triton/triton-fil]"]}
    bad = {"role": "roles/iam.workloadIdentityUser", "members": ["serviceAccount:p-sim.svc.id.goog[triton]"]}
    assert call(sim, "iam", "POST", path + ":setIamPolicy", {"policy": dict(sa_policy, bindings=[bad])}).status_code == 400
    assert call(sim, "iam", "POST", path + ":setIamPolicy", {"policy": dict(sa_policy, bindings=[wi])}).status_code == 200
    assert sim.members(("account", EMAIL), "roles/iam.workloadIdentityUser") == wi["members"]
    assert [r[3] for r in sim.write_calls()].count("iam.projects.serviceAccounts.setIamPolicy") == 2
    assert call(sim, "iam", "DELETE", path).status_code == 200 and EMAIL not in sim.accounts


def test_a_new_service_account_propagates_before_it_can_be_read_or_bound(sim):
    sim.propagation_seconds = 0.5
    assert create(sim).status_code == 200
    early = call(sim, "iam", "GET", f"/v1/projects/p-sim/serviceAccounts/{EMAIL}")
    assert early.status_code == 403, "IAM answers 403, not 404, for an account it has not propagated yet"
    assert early.json()["error"]["message"] == ("Permission 'iam.serviceAccounts.get' denied on resource "
                                                "(or it may not exist).")
    own = call(sim, "iam", "POST", f"/v1/projects/p-sim/serviceAccounts/{EMAIL}:getIamPolicy")
    assert own.status_code == 403 and "iam.serviceAccounts.getIamPolicy" in own.json()["error"]["message"]
    policy = call(sim, "resourcemanager", "POST", "/v1/projects/p-sim:getIamPolicy", {}).json()
    policy["bindings"].append({"role": "roles/viewer", "members": [f"serviceAccount:{EMAIL}"]})
    bound = call(sim, "resourcemanager", "POST", "/v1/projects/p-sim:setIamPolicy", {"policy": policy})
    assert bound.status_code == 400 and bound.json()["error"]["message"] == f"Service account {EMAIL} does not exist."
    time.sleep(0.5)
    assert call(sim, "iam", "GET", f"/v1/projects/p-sim/serviceAccounts/{EMAIL}").status_code == 200
    assert call(sim, "resourcemanager", "POST", "/v1/projects/p-sim:setIamPolicy", {"policy": policy}).status_code == 200
