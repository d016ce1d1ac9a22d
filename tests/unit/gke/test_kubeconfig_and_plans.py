"""gke_kubeconfig token handling and the planners' treatment of server defaults."""

from __future__ import annotations

import datetime

from ansible_collections.rapids.triton_fil.plugins.module_utils.gke import kubeconfig
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.node_pool import plan_pool, validate

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)


def build(existing, token, expiry):
    return kubeconfig.build(existing, context="ctx", server="https://1.2.3.4", ca_data="Q0E=", auth="token",
                            set_current=True, token_source=lambda: (token, expiry), min_lifetime=900, now=NOW)


def test_token_kept_while_valid_and_replaced_near_expiry():
    first = build(None, "tok-1", NOW + datetime.timedelta(hours=1))
    assert first["users"][0]["user"]["token"] == "tok-1"
    kept = build(first, "tok-2", NOW + datetime.timedelta(hours=1, minutes=5))
    assert kept == first, "a token valid for another hour is not rewritten"
    later = NOW + datetime.timedelta(minutes=50)
    replaced = kubeconfig.build(first, context="ctx", server="https://1.2.3.4", ca_data="Q0E=", auth="token",
                                set_current=True, token_source=lambda: ("tok-3", later + datetime.timedelta(hours=1)),
                                min_lifetime=900, now=later)
    assert replaced["users"][0]["user"]["token"] == "tok-3"
    assert kubeconfig.redact(replaced)["users"][0]["user"]["token"] == kubeconfig.REDACTED


def test_redact_covers_every_credential_field_and_the_view_only_managed_entries():
    other = {"password": "pw", "client-key-data": "KEY",
             "auth-provider": {"name": "oidc", "config": {"id-token": "ID", "client-secret": "CS"}},
             "exec": {"command": "x", "env": [{"name": "K", "value": "V"}]}}
    config = {"current-context": "ctx",
              "clusters": [{"name": "ctx", "cluster": {"server": "s"}}, {"name": "other", "cluster": {"server": "o"}}],
              "contexts": [{"name": "ctx", "context": {"cluster": "ctx", "user": "ctx"}}],
              "users": [{"name": "ctx", "user": {"token": "t0k3n"}}, {"name": "other", "user": other}]}
    clean = kubeconfig.redact(config)
    other = clean["users"][1]["user"]
    assert other["password"] == other["client-key-data"] == kubeconfig.REDACTED
    assert set(other["auth-provider"]["config"].values()) == {kubeconfig.REDACTED}
    assert other["exec"]["env"] == [{"name": "K", "value": kubeconfig.REDACTED}] and other["exec"]["command"] == "x"
    assert config["users"][1]["user"]["password"] == "pw", "the document itself is not changed"
    view = kubeconfig.managed_view(config, "ctx")
    assert view == {"clusters": [{"name": "ctx", "cluster": {"server": "s"}}],
                    "contexts": [{"name": "ctx", "context": {"cluster": "ctx", "user": "ctx"}}],
                    "users": [{"name": "ctx", "user": {"token": kubeconfig.REDACTED}}], "current-context": "ctx"}


def test_same_token_without_expiry_is_unchanged():
    first = build(None, "static", None)
    assert build(first, "static", None) == first


POOL_PARAMS = dict(machine_type="n1-standard-4", disk_size_gb=100, disk_type=None, image_type=None,
                   oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"], service_account=None, spot=False,
                   accelerator_type="nvidia-tesla-t4", accelerator_count=1, gpu_driver_version="LATEST",
                   min_node_count=2, max_node_count=3, node_locations=None, labels=None, taints=None,
                   workload_metadata="GKE_METADATA", auto_repair=True, auto_upgrade=True)


def actual_pool(**config):
    base = {"machineType": "n1-standard-4", "diskSizeGb": 100, "diskType": "pd-balanced", "imageType": "COS_CONTAINERD",
            "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"], "serviceAccount": "default",
            "accelerators": [{"acceleratorType": "nvidia-tesla-t4", "acceleratorCount": "1",
                              "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"}}],
            "workloadMetadataConfig": {"mode": "GKE_METADATA"}}
    base.update(config)
    return {"name": "gpu", "config": base, "autoscaling": {"enabled": True, "minNodeCount": 2, "maxNodeCount": 3},
            "management": {"autoRepair": True, "autoUpgrade": True}, "locations": ["us-central1-a"]}


def test_server_defaults_and_int64_strings_are_not_drift():
    assert plan_pool(POOL_PARAMS, actual_pool()) == []


def test_autoscaling_change_is_one_in_place_call_and_machine_type_is_recreate():
    changes = plan_pool({**POOL_PARAMS, "max_node_count": 4, "machine_type": "n1-standard-8"}, actual_pool())
    actions = {c["field"]: c["action"] for c in changes}
    assert actions["machine_type"] == "recreate"
    assert actions["autoscaling"][:2] == ("POST", ":setAutoscaling")


def test_validation_names_the_options():
    assert validate({**POOL_PARAMS, "min_node_count": 2, "max_node_count": None}) == [
        "min_node_count and max_node_count go together: set both to enable autoscaling, or neither"]
    assert "accelerator_count needs accelerator_type" in validate({**POOL_PARAMS, "accelerator_type": None})[0]
