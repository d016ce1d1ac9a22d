"""Chart values computed by the triton_helm role itself (playbooks/render_chart.yml), per inventory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from k8s_checks import INVENTORIES
from testlib import REPO, run_playbook

RENDER_PLAYBOOK = REPO / "playbooks" / "render_chart.yml"

# Role variables of the opt-in and alternative renders; each becomes a host of one variant inventory
# built from inventories/dev (its group_vars, and dev-us-central1's host_vars plus the overrides), so one
# ansible-playbook run computes them all with the role's own mapping.
KEY_FILE = "key.json"
VARIANTS = {
    "lb-internal": {"triton_helm_service_type": "LoadBalancer"},
    "lb-public": {"triton_helm_service_type": "LoadBalancer", "triton_helm_service_internal": False,
                  "triton_helm_service_source_ranges": ["198.51.100.0/24"]},
    "key-file": {"triton_helm_gcs_key_secret": "triton-gcs-key", "triton_helm_gcs_key_file": KEY_FILE},
    "key-existing": {"triton_helm_gcs_key_secret": "made-elsewhere"},
    "metric-pending": {"triton_helm_autoscaling_metric": {
        "name": "triton_pending_requests", "expr": 'avg(nv_inference_pending_request_count{job="__JOB__"})',
        "target_type": "AverageValue", "target": "4"}},
    "autoscaling-off": {"triton_helm_autoscaling_enabled": False, "triton_helm_min_replicas": 2,
                        "triton_helm_max_replicas": 2},
    "rollout-off": {"triton_fil_model_rollout": False},
    "served-models": {"triton_fil_served_models": ["churn", "fil"]},
}


def render_values(out_dir, inventory, extra_vars=None):
    """{host: values dict} of every host of an inventory, as the role computes them; files in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = run_playbook(RENDER_PLAYBOOK, inventory=inventory,
                       extra_vars={"render_chart_dir": str(out_dir), **(extra_vars or {})}, timeout=300)
    assert run.rc == 0 and run.failed == 0, f"render_chart.yml -i {inventory} failed:\n{run.stdout}\n{run.stderr}"
    return {p.name[: -len(".values.yaml")]: p for p in sorted(out_dir.glob("*.values.yaml"))}


@pytest.fixture(scope="session")
def rendered_values(tmp_path_factory):
    """{inventory: {host: values file}} for every inventory in inventories/ (local renders the defaults)."""
    return {inventory: render_values(tmp_path_factory.mktemp(f"values-{inventory}"), REPO / "inventories" / inventory)
            for inventory in INVENTORIES}


@pytest.fixture(scope="session")
def variant_values(tmp_path_factory):
    """{variant: values file} of the dev deployment with the VARIANTS overrides."""
    root = tmp_path_factory.mktemp("variants")
    dev = REPO / "inventories" / "dev"
    shutil.copytree(dev / "group_vars", root / "group_vars")
    base = yaml.safe_load((dev / "host_vars" / "dev-us-central1.yml").read_text())
    key_file = root / KEY_FILE
    key_file.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nX\\n"}')
    hosts = {}
    for name, overrides in VARIANTS.items():
        host_vars = {**base, **overrides}
        if host_vars.get("triton_helm_gcs_key_file") == KEY_FILE:
            host_vars["triton_helm_gcs_key_file"] = str(key_file)
        hosts[name] = host_vars
    (root / "hosts.yml").write_text(yaml.safe_dump({"triton_fil": {"hosts": hosts}}))
    return render_values(root / "out", root)
