"""The triton chart for every inventory: helm lint/template, schemas, policy, the autoscaling chain.

The values come from the triton_helm role's own mapping (playbooks/render_chart.yml runs its
tasks/values.yml), so these tests check what `kubernetes.core.helm` would install for each deployment.
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from k8s_checks import (CHART, HELMS, INVENTORIES, REPO, autoscaling_chain_problems, by_kind, helm, load_docs,
                        one, policy_problems, schema_problems, template, template_run)

ADAPTER_MANIFEST = REPO / "roles" / "metrics_adapter" / "files" / "custom-metrics-stackdriver-adapter.yaml"
ADAPTER_DEFAULTS = REPO / "roles" / "metrics_adapter" / "defaults" / "main.yml"
HELM_DEFAULTS = REPO / "roles" / "triton_helm" / "defaults" / "main.yml"


def adapter():
    """The adapter objects and the APIServices the metrics_adapter role waits for."""
    return (load_docs(ADAPTER_MANIFEST.read_text()),
            yaml.safe_load(ADAPTER_DEFAULTS.read_text())["metrics_adapter_apiservices"])


def chain(objects):
    return autoscaling_chain_problems(objects, *adapter())


def hosts(target=None):
    """(inventory, host) pairs, read from the inventories without running anything; of one target if given."""
    pairs = []
    for inventory in INVENTORIES:
        data = yaml.safe_load((REPO / "inventories" / inventory / "hosts.yml").read_text())
        group = REPO / "inventories" / inventory / "group_vars" / "triton_fil.yml"
        inventory_target = (yaml.safe_load(group.read_text()) or {}).get("triton_fil_target", "gke") if group.exists() else "gke"
        for host in data["triton_fil"]["hosts"]:
            if target is None or inventory_target == target:
                pairs.append((inventory, host))
    return pairs


HOSTS = hosts()
GKE_HOSTS = hosts("gke")


@pytest.fixture
def release(rendered_values, request):
    inventory, host = request.param
    values_file = rendered_values[inventory][host]
    objects = template(values_file, release=yaml.safe_load(HELM_DEFAULTS.read_text())["triton_helm_release"])
    return inventory, host, values_file, objects


def test_every_inventory_is_rendered():
    assert {"dev", "prod", "multi-project"} <= set(INVENTORIES)
    assert len([h for i, h in HOSTS if i == "multi-project"]) == 2


@pytest.mark.parametrize("binary", sorted(HELMS))
@pytest.mark.parametrize("release", HOSTS, indirect=True, ids=[f"{i}/{h}" for i, h in HOSTS])
def test_helm_lint_strict(release, binary):
    """helm 3.17 and helm 4 both lint the chart strictly clean."""
    values_file = release[2]
    proc = helm("lint", "--strict", str(CHART), "-f", str(values_file), "--namespace", "triton", binary=HELMS[binary])
    assert "0 chart(s) failed" in proc.stdout and "[WARNING]" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("release", HOSTS, indirect=True, ids=[f"{i}/{h}" for i, h in HOSTS])
def test_helm4_renders_what_helm3_renders(release):
    """The same chart and values give the same objects with helm 4 as with helm 3.17 (so every check on the
    helm 3 rendering in this file holds for a helm 4 install too)."""
    _inventory, _host, values_file, objects = release
    release_name = yaml.safe_load(HELM_DEFAULTS.read_text())["triton_helm_release"]
    assert template(values_file, release=release_name, binary=HELMS["helm4"]) == objects
    version = helm("version", "--template", "{{ .Version }}", binary=HELMS["helm4"]).stdout
    assert version.startswith("v4."), version


@pytest.mark.parametrize("release", HOSTS, indirect=True, ids=[f"{i}/{h}" for i, h in HOSTS])
def test_rendered_objects_match_the_kubernetes_schemas(release):
    objects = release[3]
    values = yaml.safe_load(release[2].read_text())
    kinds = sorted(o["kind"] for o in objects)
    # GKE: Managed Prometheus scrapes and records the HPA's signal; other clusters get no GMP objects and,
    # by default, no autoscaling (inventories/local renders what a non-GKE target gets).
    gmp = ["HorizontalPodAutoscaler", "PodMonitoring", "Rules"] if values["monitoring"]["managedPrometheus"] else []
    assert kinds == sorted(["Deployment", "PodDisruptionBudget", "Service", "ServiceAccount", *gmp])
    problems = [p for obj in objects for p in schema_problems(obj)]
    assert problems == []


@pytest.mark.parametrize("release", GKE_HOSTS, indirect=True, ids=[f"{i}/{h}" for i, h in GKE_HOSTS])
def test_rendered_objects_follow_the_policy(release):
    inventory, host, values_file, objects = release
    assert policy_problems(objects) == []
    values = yaml.safe_load(values_file.read_text())
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == values["replicas"]["min"]
    assert hpa["spec"]["maxReplicas"] == values["replicas"]["max"]
    assert hpa["spec"]["behavior"] == values["autoscaling"]["behavior"]
    if inventory != "rehearsal":  # the rehearsal's HPA acts within seconds (its inventory says so)
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    # One replica minimum: surge (no downtime); more: one at a time without a spare GPU node.
    rolling = one(objects, "Deployment")["spec"]["strategy"]["rollingUpdate"]
    surge = {"maxSurge": 1, "maxUnavailable": 0}
    one_at_a_time = {"maxSurge": 0, "maxUnavailable": 1}
    assert rolling == (surge if values["replicas"]["min"] == 1 else one_at_a_time)
    service = one(objects, "Service")
    assert service["spec"]["type"] == "ClusterIP", f"{inventory}/{host}: the default Service must be internal"
    assert "replicas" not in one(objects, "Deployment")["spec"], "the HPA owns the replica count"


@pytest.mark.parametrize("release", GKE_HOSTS, indirect=True, ids=[f"{i}/{h}" for i, h in GKE_HOSTS])
def test_autoscaling_chain_is_consistent(release):
    objects = release[3]
    assert chain(objects) == []
    hpa = one(objects, "HorizontalPodAutoscaler")
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]
    assert metric["name"] == "prometheus.googleapis.com|triton_queue_duration_us_per_request|gauge"


@pytest.mark.parametrize("release", [("local", "local")], indirect=True, ids=["local/local"])
def test_a_cluster_without_gke_gets_no_gke_only_objects(release):
    """inventories/local renders what any non-GKE target gets: no GKE node label, no GMP objects, no HPA."""
    _inventory, _host, _values, objects = release
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod
    assert [t["key"] for t in pod["tolerations"]] == ["nvidia.com/gpu"]
    assert not by_kind(objects, "PodMonitoring") and not by_kind(objects, "Rules")
    assert one(objects, "Deployment")["spec"]["replicas"] == 1, "without an HPA the Deployment keeps min"


def test_tritonserver_runs_through_the_image_entrypoint(rendered_values):
    """args only, as Triton's charts: a command would bypass the NGC entrypoint (CUDA forward compatibility)."""
    container = one(template(rendered_values["dev"]["dev-us-central1"]), "Deployment")["spec"]["template"]["spec"][
        "containers"][0]
    assert "command" not in container
    assert container["args"][0] == "tritonserver" and container["args"][1].startswith("--model-repository=gs://")


def test_models_load_explicitly_so_new_versions_need_no_restart(rendered_values, variant_values):
    """--model-control-mode=explicit with one --load-model per served model; without the rollout, Triton's default."""
    def args(values_file):
        return one(template(values_file), "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]

    dev = args(rendered_values["dev"]["dev-us-central1"])
    assert "--model-control-mode=explicit" in dev
    assert [a for a in dev if a.startswith("--load-model=")] == ["--load-model=fil"]
    served = args(variant_values["served-models"])
    assert [a for a in served if a.startswith("--load-model=")] == ["--load-model=churn", "--load-model=fil"]
    off = args(variant_values["rollout-off"])
    assert "--model-control-mode=none" in off and not [a for a in off if a.startswith("--load-model")]


def test_chart_digest_makes_template_changes_a_values_change(rendered_values):
    """kubernetes.core.helm without helm-diff upgrades only when values or the chart version differ."""
    digests = {yaml.safe_load(path.read_text())["chartDigest"]
               for hosts_ in rendered_values.values() for path in hosts_.values()}
    assert len(digests) == 1 and re.fullmatch(r"[0-9a-f]{64}", digests.pop())
    deployment = one(template(rendered_values["dev"]["dev-us-central1"]), "Deployment")
    assert re.fullmatch(r"[0-9a-f]{64}", deployment["metadata"]["annotations"]["rapids.triton-fil/chart-digest"])


def test_inventory_replica_ranges_reach_the_hpa(rendered_values):
    replicas = {host: yaml.safe_load(path.read_text())["replicas"]
                for hosts_ in rendered_values.values() for host, path in hosts_.items()}
    assert replicas["dev-us-central1"] == {"min": 1, "max": 2}
    assert replicas["prod-us-central1"] == {"min": 2, "max": 3}
    assert replicas["team-us"] == replicas["team-eu"] == {"min": 2, "max": 3}


# ------------------------------------------------------------------------------ the chain fails when it diverges

@pytest.fixture(scope="module")
def dev_values(rendered_values):
    return yaml.safe_load(rendered_values["dev"]["dev-us-central1"].read_text())


def render_mutated(tmp_path, values, mutate):
    mutated = copy.deepcopy(values)
    mutate(mutated)
    path = tmp_path / "mutated.values.yaml"
    path.write_text(yaml.safe_dump(mutated))
    return template(path)


@pytest.mark.parametrize("mutation, expected", [
    (lambda v: v["autoscaling"]["metric"].update(
        expr=v["autoscaling"]["metric"]["expr"].replace("nv_inference_queue_duration_us", "nv_inference_queue_us")),
     "nv_inference_queue_us is not a metric tritonserver exports"),
    (lambda v: v["server"].update(extraArgs=["--allow-metrics=false"]), "--allow-metrics=false"),
    (lambda v: v["autoscaling"]["metric"].update(expr=v["autoscaling"]["metric"]["expr"].replace("__JOB__", "other")),
     "is not restricted to a scraped job"),
], ids=["unknown-triton-metric", "metrics-disabled", "other-scrape-job"])
def test_chain_check_fails_when_values_break_the_chain(tmp_path, dev_values, mutation, expected):
    problems = chain(render_mutated(tmp_path, dev_values, mutation))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("mutation, expected", [
    (lambda objs: one(objs, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["external"]["metric"].update(
        name="prometheus.googleapis.com|nv_inference_queue_duration_us|counter"), "which nothing exports"),
    (lambda objs: one(objs, "Rules")["spec"]["groups"][0]["rules"][0].update(record="renamed_series"),
     "which nothing exports"),
    (lambda objs: one(objs, "PodMonitoring")["spec"]["endpoints"][0].update(port="http"),
     "tritonserver serves metrics on --metrics-port=8002"),
    (lambda objs: one(objs, "PodMonitoring")["spec"]["selector"]["matchLabels"].update(
        {"app.kubernetes.io/instance": "other"}), "not the Triton pods"),
    (lambda objs: one(objs, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["external"]["metric"]["selector"][
        "matchLabels"].update({"resource.labels.namespace": "default"}), "selects namespace 'default'"),
    (lambda objs: one(objs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(name="other"),
     "not the Triton Deployment"),
], ids=["hpa-metric", "recorded-name", "scrape-port", "scrape-selector", "hpa-namespace", "hpa-target"])
def test_chain_check_fails_when_objects_diverge(rendered_values, mutation, expected):
    objects = template(rendered_values["dev"]["dev-us-central1"])
    assert chain(objects) == []
    mutation(objects)
    problems = chain(objects)
    assert any(expected in p for p in problems), problems


def test_chain_check_fails_without_the_external_metrics_api(rendered_values):
    objects = template(rendered_values["dev"]["dev-us-central1"])
    adapter_objects = adapter()[0]
    without_external = [o for o in adapter_objects if o.get("spec", {}).get("group") != "external.metrics.k8s.io"]
    problems = autoscaling_chain_problems(objects, without_external, ["v1beta1.custom.metrics.k8s.io"])
    assert any("serves no external.metrics.k8s.io" in p for p in problems), problems
    assert any("does not wait for external.metrics.k8s.io" in p for p in problems), problems


def test_one_variable_moves_the_whole_chain(variant_values):
    """Renaming the metric and changing its expression in the role variable keeps every link consistent."""
    objects = template(variant_values["metric-pending"])
    assert chain(objects) == []
    hpa_metric = one(objects, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["external"]
    assert hpa_metric["metric"]["name"] == "prometheus.googleapis.com|triton_pending_requests|gauge"
    assert hpa_metric["target"] == {"type": "AverageValue", "averageValue": "4"}
    rule = one(objects, "Rules")["spec"]["groups"][0]["rules"][0]
    assert rule == {"record": "triton_pending_requests", "expr": 'avg(nv_inference_pending_request_count{job="triton-fil"})'}


# ------------------------------------------------------------------------------ opt-ins and refusals

def test_load_balancer_is_internal_unless_public_is_asked_for(variant_values):
    internal = template(variant_values["lb-internal"])
    service = one(internal, "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"]["networking.gke.io/load-balancer-type"] == "Internal"
    assert policy_problems(internal) == []

    public = template(variant_values["lb-public"])
    service = one(public, "Service")
    assert "annotations" not in service["metadata"]
    assert service["spec"]["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    assert any("public LoadBalancer without the opt-in" in p for p in policy_problems(public))
    assert policy_problems(public, public_service=True) == []
    assert [p for obj in public for p in schema_problems(obj)] == []


def test_gcs_key_secret_only_when_opted_in(variant_values):
    objects = template(variant_values["key-file"])
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == "triton-gcs-key" and "key.json" in secret["data"]
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/run/secrets/gcs/key.json"} in container["env"]
    assert any("without the key-file opt-in" in p for p in policy_problems(objects))
    assert policy_problems(objects, gcs_key=True) == []
    assert [p for obj in objects for p in schema_problems(obj)] == []

    existing = template(variant_values["key-existing"])
    assert by_kind(existing, "Secret") == []
    volumes = one(existing, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "gcs-key", "secret": {"secretName": "made-elsewhere", "defaultMode": 256}} in volumes


def test_chart_refuses_an_image_without_digest(tmp_path, dev_values):
    for ref in ("", "nvcr.io/nvidia/tritonserver:24.09-py3"):
        values = copy.deepcopy(dev_values)
        values["image"]["ref"] = ref
        path = tmp_path / "tag.values.yaml"
        path.write_text(yaml.safe_dump(values))
        proc = template_run(path)
        assert proc.returncode != 0 and "image.ref" in proc.stderr, proc.stderr


def test_role_refuses_an_image_without_digest(ansible):
    run = ansible(REPO / "playbooks" / "render_chart.yml", inventory=REPO / "inventories" / "dev",
                  extra_vars={"render_chart_dir": "/nonexistent",
                              "triton_fil_image": {"ref": "nvcr.io/nvidia/tritonserver:24.09-py3"}})
    assert run.rc != 0
    assert "image must be REPOSITORY@sha256:DIGEST" in run.stdout


def test_autoscaling_off_keeps_the_minimum(variant_values):
    objects = template(variant_values["autoscaling-off"])
    assert by_kind(objects, "HorizontalPodAutoscaler") == [] and by_kind(objects, "Rules") == []
    assert one(objects, "Deployment")["spec"]["replicas"] == 2
    assert policy_problems(objects) == []


def test_schema_validation_is_strict(rendered_values):
    """A typo in a field is caught, so a clean result above means something."""
    objects = template(rendered_values["dev"]["dev-us-central1"])
    deployment = copy.deepcopy(one(objects, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert any("livenesProbe" in p for p in schema_problems(deployment))
    monitor = copy.deepcopy(one(objects, "PodMonitoring"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    assert any("intervall" in p for p in schema_problems(monitor))
