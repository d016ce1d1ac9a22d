"""gke_cluster, gke_node_pool and gke_kubeconfig through ansible-playbook against the GKE simulator."""

from __future__ import annotations

import os
import stat

import yaml

TOKEN = "ya29.FAKE-gke-token-must-never-print-7f3a"
PROJECT = "test-project"

COMMON = """
        project: test-project
        location: "{{ location | default('us-central1-a') }}"
        auth_kind: accesstoken
        access_token: "{{ token }}"
        api_endpoint: "{{ endpoint }}"
"""

CLUSTER_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: cluster
      rapids.triton_fil.gke_cluster:
        name: triton-fil
        state: "{{ state | default('present') }}"
        machine_type: "{{ machine_type | default('n1-standard-8') }}"
        release_channel: "{{ channel | default('REGULAR') }}"
        labels: "{{ labels | default(omit) }}"
        node_locations: "{{ node_locations | default(omit) }}"
        recreate: "{{ recreate | default(false) }}"
        wait_timeout: 60
""" + COMMON

POOL_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: pool
      rapids.triton_fil.gke_node_pool:
        cluster: triton-fil
        name: gpu-pool
        state: "{{ state | default('present') }}"
        machine_type: "{{ machine_type | default('n1-standard-4') }}"
        accelerator_type: nvidia-tesla-t4
        accelerator_count: 1
        gpu_driver_version: LATEST
        initial_node_count: 2
        min_node_count: "{{ min_nodes | default(2) }}"
        max_node_count: "{{ max_nodes | default(3) }}"
        taints: [{key: nvidia.com/gpu, value: present, effect: NO_SCHEDULE}]
        labels: {workload: triton}
        recreate: "{{ recreate | default(false) }}"
        wait_timeout: 60
""" + COMMON

KUBECONFIG_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: kubeconfig
      rapids.triton_fil.gke_kubeconfig:
        cluster: triton-fil
        path: "{{ path }}"
        auth: "{{ auth | default('exec_plugin') }}"
        project: test-project
        location: "{{ location | default('us-central1-a') }}"
        auth_kind: "{{ auth_kind | default('accesstoken') }}"
        access_token: "{{ token if (auth_kind | default('accesstoken')) == 'accesstoken' else omit }}"
        service_account_file: "{{ key | default(omit) }}"
        api_endpoint: "{{ endpoint }}"
"""


def ev(gke, **extra):
    return {"endpoint": gke.url, "token": TOKEN, **extra}


def test_cluster_create_converge_update_refuse_delete(ansible, gke):
    plan = ansible(CLUSTER_PLAY, extra_vars=ev(gke), check=True, diff=True)
    assert plan.rc == 0 and plan.changed == 1
    assert gke.write_calls() == [], "check mode must not call a mutating method"

    first = ansible(CLUSTER_PLAY, extra_vars=ev(gke, labels={"app": "triton-fil"}))
    assert first.rc == 0, first.stdout[-3000:]
    cluster = first.result("cluster")["cluster"]
    assert cluster["status"] == "RUNNING" and cluster["endpoint"] and cluster["ca_certificate"]
    assert cluster["workload_pool"] == "test-project.svc.id.goog"
    assert [c[2].rsplit(".", 1)[1] for c in gke.write_calls()] == ["create"]
    (sent,) = [c for c in gke.requests if c[2] and c[2].endswith("clusters.create")]
    assert sent[3] == 200

    gke.reset_log()
    second = ansible(CLUSTER_PLAY, extra_vars=ev(gke, labels={"app": "triton-fil"}))
    assert second.rc == 0 and second.changed == 0
    assert gke.write_calls() == [], "a converged cluster needs 0 write calls"

    gke.reset_log()
    updated = ansible(CLUSTER_PLAY, extra_vars=ev(gke, channel="STABLE", labels={"app": "triton-fil", "env": "dev"}),
                      diff=True)
    assert updated.rc == 0 and updated.changed == 1
    assert sorted(c[2].rsplit(".", 1)[1] for c in gke.write_calls()) == ["setResourceLabels", "update"]
    changes = {c["field"]: c for c in updated.result("cluster")["changes"]}
    assert changes["release_channel"]["before"] == "REGULAR" and changes["release_channel"]["after"] == "STABLE"

    gke.reset_log()
    refused = ansible(CLUSTER_PLAY, extra_vars=ev(gke, channel="STABLE", machine_type="n1-standard-16",
                                                  labels={"app": "triton-fil", "env": "dev"}))
    assert refused.rc != 0
    msg = refused.result("cluster")["msg"]
    assert "must be recreated to change machine_type ('n1-standard-8' -> 'n1-standard-16')" in msg
    assert "Nothing was changed" in msg and "recreate=true" in msg
    assert gke.write_calls() == []

    gke.reset_log()
    gone = ansible(CLUSTER_PLAY, extra_vars=ev(gke, state="absent"))
    assert gone.rc == 0 and gone.changed == 1
    assert [c[2].rsplit(".", 1)[1] for c in gke.write_calls()] == ["delete"]
    again = ansible(CLUSTER_PLAY, extra_vars=ev(gke, state="absent"))
    assert again.rc == 0 and again.changed == 0


def test_recreate_true_replaces_the_cluster(ansible, gke):
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke)).rc == 0
    gke.reset_log()
    run = ansible(CLUSTER_PLAY, extra_vars=ev(gke, machine_type="n1-standard-16", recreate=True))
    assert run.rc == 0 and run.changed == 1
    assert [c[2].rsplit(".", 1)[1] for c in gke.write_calls()] == ["delete", "create"]
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke, machine_type="n1-standard-16")).changed == 0


def test_gpu_pool_autoscaling_in_place_then_refusal_then_teardown(ansible, gke):
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke)).rc == 0
    missing = ansible(POOL_PLAY, extra_vars=ev(gke, location="us-east1-b"))
    assert missing.rc != 0 and "cluster 'triton-fil' does not exist in test-project/us-east1-b" in missing.result("pool")["msg"]

    gke.reset_log()
    created = ansible(POOL_PLAY, extra_vars=ev(gke))
    assert created.rc == 0, created.stdout[-3000:]
    pool = created.result("pool")["node_pool"]
    assert (pool["accelerator_type"], pool["accelerator_count"], pool["gpu_driver_version"]) == ("nvidia-tesla-t4", 1, "LATEST")
    assert pool["autoscaling"] == {"enabled": True, "minNodeCount": 2, "maxNodeCount": 3}
    assert [c[2].rsplit(".", 1)[1] for c in gke.write_calls()] == ["create"]

    gke.reset_log()
    assert ansible(POOL_PLAY, extra_vars=ev(gke)).changed == 0
    assert gke.write_calls() == []

    gke.reset_log()
    scaled = ansible(POOL_PLAY, extra_vars=ev(gke, max_nodes=4), diff=True)
    assert scaled.rc == 0 and scaled.changed == 1
    assert [c[2].rsplit(".", 1)[1] for c in gke.write_calls()] == ["setAutoscaling"], "exactly one setAutoscaling"
    assert scaled.result("pool")["node_pool"]["autoscaling"]["maxNodeCount"] == 4

    bad = ansible(POOL_PLAY, extra_vars=ev(gke, min_nodes=5, max_nodes=4))
    assert bad.rc != 0 and "min_node_count (5) must be >= 0 and <= max_node_count (4)" in bad.result("pool")["msg"]

    gke.reset_log()
    refused = ansible(POOL_PLAY, extra_vars=ev(gke, max_nodes=4, machine_type="n1-highmem-8"))
    assert refused.rc != 0
    assert "node pool 'gpu-pool' must be recreated to change machine_type" in refused.result("pool")["msg"]
    assert gke.write_calls() == []

    gke.reset_log()
    assert ansible(POOL_PLAY, extra_vars=ev(gke, state="absent")).changed == 1
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke, state="absent")).changed == 1
    assert [c[2].rsplit(".", 2)[-2:] for c in gke.write_calls()] == [["nodePools", "delete"], ["clusters", "delete"]]


INLINE_POOL_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: cluster
      rapids.triton_fil.gke_cluster:
        name: triton-fil
        machine_type: n1-standard-8
        poll_interval: 0.2
        node_pools: "{{ pools }}"
        wait_timeout: 60
""" + COMMON

GPU_POOL = {"name": "gpu-pool", "machine_type": "n1-standard-4", "accelerator_type": "nvidia-tesla-t4",
            "accelerator_count": 1, "gpu_driver_version": "LATEST", "initial_node_count": 2, "min_node_count": 2,
            "max_node_count": 3, "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}],
            "labels": {"workload": "triton"}}


def test_gpu_pool_created_inside_the_cluster_operation_then_pool_module_finds_it(ansible, gke):
    bad = ansible(INLINE_POOL_PLAY, extra_vars=ev(gke, pools=[
        {**GPU_POOL, "min_node_count": 4}, {"machine_type": "n1-standard-4"}, {**GPU_POOL, "spot": "maybe"}]))
    assert bad.rc != 0
    msg = bad.result("cluster")["msg"]
    assert "node_pools[0]: min_node_count (4) must be >= 0 and <= max_node_count (3)" in msg
    assert "node_pools[1]: missing required arguments: name" in msg
    assert "node_pools[2]:" in msg and "spot" in msg
    assert gke.write_calls() == [], "bad node_pools must be refused before any write"

    plan = ansible(INLINE_POOL_PLAY, extra_vars=ev(gke, pools=[GPU_POOL]), check=True, diff=True)
    assert plan.rc == 0 and plan.changed == 1 and gke.write_calls() == []
    after = plan.result("cluster")["diff"]["after"]
    assert [p["name"] for p in after["nodePools"]] == ["default-pool", "gpu-pool"]

    created = ansible(INLINE_POOL_PLAY, extra_vars=ev(gke, pools=[GPU_POOL]))
    assert created.rc == 0, created.stdout[-3000:]
    assert created.result("cluster")["cluster"]["node_pools"] == ["default-pool", "gpu-pool"]
    assert [c[2].rsplit(".", 1)[1] for c in gke.write_calls()] == ["create"], "one operation for cluster and pool"
    (sent,) = [r for r in gke.requests if r[2] and r[2].endswith("clusters.create")]
    assert sent[3] == 200

    # gke_node_pool with the same options finds the pool as created: nothing to do, no write.
    gke.reset_log()
    pool = ansible(POOL_PLAY, extra_vars=ev(gke))
    assert pool.rc == 0 and pool.changed == 0, pool.stdout[-3000:]
    assert pool.result("pool")["node_pool"]["autoscaling"] == {"enabled": True, "minNodeCount": 2, "maxNodeCount": 3}
    assert gke.write_calls() == []

    # On an existing cluster node_pools is not compared (gke_node_pool converges pools).
    gke.reset_log()
    again = ansible(INLINE_POOL_PLAY, extra_vars=ev(gke, pools=[{**GPU_POOL, "max_node_count": 5}]))
    assert again.rc == 0 and again.changed == 0 and gke.write_calls() == []


def test_poll_interval_must_be_positive(ansible, gke):
    run = ansible(INLINE_POOL_PLAY.replace("poll_interval: 0.2", "poll_interval: -1"), extra_vars=ev(gke, pools=[]))
    assert run.rc != 0 and "poll_interval must be a positive number of seconds" in run.result("cluster")["msg"]
    assert gke.write_calls() == []


def test_transient_faults_heal_through_retries(ansible, gke):
    gke.inject("status", 503, count=2, match="clusters.create")
    gke.inject("drop", count=1, match="operations.get")
    gke.inject("status", 429, count=1, match="clusters.get")
    run = ansible(CLUSTER_PLAY, extra_vars=ev(gke))
    assert run.rc == 0, run.stdout[-3000:]
    statuses = [r[3] for r in gke.requests]
    assert statuses.count(503) == 2 and statuses.count(429) == 1 and None in statuses
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke)).changed == 0


def test_failed_operation_and_quota_fail_clearly_then_rerun_converges(ansible, gke):
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke)).rc == 0
    gke.inject("op_error", match="CREATE_NODE_POOL", message="Insufficient quota to satisfy the request: "
               "NVIDIA_T4_GPUS in region us-central1")
    failed = ansible(POOL_PLAY, extra_vars=ev(gke))
    assert failed.rc != 0
    msg = failed.result("pool")["msg"]
    assert "create node pool 'gpu-pool' in cluster 'triton-fil' (test-project/us-central1-a)" in msg
    assert "(CREATE_NODE_POOL) failed: Insufficient quota" in msg and "NVIDIA_T4_GPUS" in msg

    # The failed pool stays behind in ERROR: replacing it is destructive, so only with recreate=true.
    gke.reset_log()
    kept = ansible(POOL_PLAY, extra_vars=ev(gke))
    assert kept.rc != 0 and gke.write_calls() == []
    msg = kept.result("pool")["msg"]
    assert "node pool 'gpu-pool' of cluster 'triton-fil' is ERROR" in msg and "set recreate=true" in msg

    healed = ansible(POOL_PLAY, extra_vars=ev(gke, recreate=True))
    assert healed.rc == 0 and healed.changed == 1
    assert healed.result("pool")["node_pool"]["status"] == "RUNNING"
    assert ansible(POOL_PLAY, extra_vars=ev(gke)).changed == 0

    gke.inject("status", 403, match="clusters.create", reason="QUOTA_EXCEEDED",
               message="Insufficient regional quota to satisfy request: resource \"CPUS\"")
    quota = ansible(CLUSTER_PLAY, extra_vars=ev(gke, location="europe-west4"))
    assert quota.rc != 0
    msg = quota.result("cluster")["msg"]
    assert "create cluster 'triton-fil' in test-project/europe-west4" in msg
    assert "403 QUOTA_EXCEEDED" in msg and "CPUS" in msg


def test_token_never_printed(ansible, gke, tmp_path):
    run = ansible(CLUSTER_PLAY, extra_vars=ev(gke), verbosity=3, callback="default", diff=True)
    assert run.rc == 0
    assert TOKEN not in run.stdout and TOKEN not in run.stderr
    kube = ansible(KUBECONFIG_PLAY, extra_vars=ev(gke, path=str(tmp_path / "kc"), auth="token"),
                   verbosity=3, callback="default", diff=True)
    assert kube.rc == 0
    assert TOKEN not in kube.stdout and TOKEN not in kube.stderr
    assert "token: <redacted>" in kube.stdout
    assert yaml.safe_load((tmp_path / "kc").read_text())["users"][0]["user"]["token"] == TOKEN


def test_kubeconfig_merges_idempotently_with_mode_0600(ansible, gke, google_identity, tmp_path):
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke)).rc == 0
    key = google_identity.service_account(f"deployer@{PROJECT}.iam.gserviceaccount.com")
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "other",
                                    "clusters": [{"name": "other", "cluster": {"server": "https://10.0.0.1"}}],
                                    "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
                                    "users": [{"name": "other", "user": {"token": "keep-me"}}]}))
    os.chmod(path, 0o644)
    sa = {"auth_kind": "serviceaccount", "key": str(key)}
    check = ansible(KUBECONFIG_PLAY, extra_vars=ev(gke, path=str(path), **sa), check=True)
    assert check.rc == 0 and check.changed == 1
    assert "gke_test-project" not in path.read_text()

    first = ansible(KUBECONFIG_PLAY, extra_vars=ev(gke, path=str(path), **sa))
    assert first.rc == 0 and first.changed == 1
    result = first.result("kubeconfig")
    assert result["context"] == "gke_test-project_us-central1-a_triton-fil"
    config = yaml.safe_load(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config["current-context"] == result["context"]
    assert {c["name"] for c in config["contexts"]} == {"other", result["context"]}
    assert config["users"][0]["user"]["token"] == "keep-me"
    mine = next(u for u in config["users"] if u["name"] == result["context"])
    assert mine["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    # The plugin authenticates as the module did: ADC, from the module's own key file.
    assert mine["user"]["exec"]["args"] == ["--use_application_default_credentials"]
    assert mine["user"]["exec"]["env"] == [{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": str(key)}]
    server = next(c for c in config["clusters"] if c["name"] == result["context"])["cluster"]
    assert server["server"].startswith("https://34.") and server["certificate-authority-data"]

    gke.reset_log()
    second = ansible(KUBECONFIG_PLAY, extra_vars=ev(gke, path=str(path), **sa))
    assert second.rc == 0 and second.changed == 0
    assert gke.write_calls() == []


def test_kubeconfig_exec_plugin_refuses_credentials_it_cannot_pass_on(ansible, gke, tmp_path):
    """An access token cannot reach gke-gcloud-auth-plugin: the plugin would run as someone else."""
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke)).rc == 0
    path = tmp_path / "kc"
    run = ansible(KUBECONFIG_PLAY, extra_vars=ev(gke, path=str(path)))
    assert run.rc != 0 and not path.exists()
    assert "auth=exec_plugin cannot hand an access token to gke-gcloud-auth-plugin: set auth=token" in (
        run.result("kubeconfig")["msg"])


def test_kubeconfig_token_names_its_identity_by_email(ansible, gke, google_identity, tmp_path):
    """The token of auth=token is minted with userinfo.email: RBAC bindings by e-mail then match it."""
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke)).rc == 0
    email = f"deployer@{PROJECT}.iam.gserviceaccount.com"
    key = google_identity.service_account(email)
    run = ansible(KUBECONFIG_PLAY, extra_vars=ev(gke, path=str(tmp_path / "kc"), auth="token",
                                                 auth_kind="serviceaccount", key=str(key)))
    assert run.rc == 0, run.stdout[-2000:]
    (who, scopes), = google_identity.token_requests
    assert who == email and "https://www.googleapis.com/auth/userinfo.email" in scopes
    token = yaml.safe_load((tmp_path / "kc").read_text())["users"][0]["user"]["token"]
    review = google_identity.token_review({"spec": {"token": token}})
    assert review["status"]["user"]["username"] == email


OTHER_SECRETS = ("hunter2-basic-password", "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=", "ya29.other-users-access-token",
                 "refresh-token-of-someone-else", "exec-env-api-key-5b1f")


def test_kubeconfig_diff_shows_only_managed_entries_and_no_credential(ansible, gke, tmp_path):
    """Other users' passwords, client keys, auth-provider tokens and exec env never reach the output."""
    assert ansible(CLUSTER_PLAY, extra_vars=ev(gke)).rc == 0
    path = tmp_path / "config"
    password, key, access, refresh, api_key = OTHER_SECRETS
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "basic", "users": [
        {"name": "basic", "user": {"username": "admin", "password": password}},
        {"name": "cert", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": key}},
        {"name": "legacy-gcp", "user": {"auth-provider": {"name": "gcp", "config": {
            "access-token": access, "refresh-token": refresh, "cmd-path": "/usr/bin/gcloud"}}}},
        {"name": "exec", "user": {"exec": {"command": "get-token", "apiVersion": "client.authentication.k8s.io/v1",
                                           "env": [{"name": "API_KEY", "value": api_key}]}}},
    ], "clusters": [], "contexts": []}))
    path.chmod(0o600)
    shown = ansible(KUBECONFIG_PLAY, extra_vars=ev(gke, path=str(path), auth="token"), verbosity=3,
                    callback="default", diff=True)
    assert shown.rc == 0, shown.stdout[-3000:]
    for secret in OTHER_SECRETS + (TOKEN,):
        assert secret not in shown.stdout and secret not in shown.stderr, secret
    assert "gke_test-project_us-central1-a_triton-fil" in shown.stdout
    assert "legacy-gcp" not in shown.stdout and "username: admin" not in shown.stdout, "only managed entries"
    kept = yaml.safe_load(path.read_text())
    assert next(u for u in kept["users"] if u["name"] == "basic")["user"]["password"] == password

    registered = ansible(KUBECONFIG_PLAY, extra_vars=ev(gke, path=str(path), auth="token"))
    assert registered.rc == 0
    assert "diff" not in registered.result("kubeconfig"), "the diff is returned only with --diff"
    assert not any(secret in registered.stdout for secret in OTHER_SECRETS)
