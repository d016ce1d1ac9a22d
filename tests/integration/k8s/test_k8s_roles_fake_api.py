"""gpu_drivers, metrics_adapter and triton_helm through ansible-playbook against in-memory API servers.

One fake API server per scenario, one inventory host per server, so a single ansible-playbook run plays
every scenario in parallel (forks); a second run on two successful hosts shows that nothing changes.
Checked: what the roles apply, their waits (attempts, deadline, the message that names what is missing),
the triton_fil_endpoint fact. triton_helm's kubernetes.core.helm calls go to fake_helm.py, which renders
the real chart with the real helm and creates the objects in the fake API server.
"""

from __future__ import annotations

import sys
from collections import namedtuple
from contextlib import ExitStack

import pytest
import yaml

from fake_apiserver import FakeApiServer
from testlib import REPO, run_playbook

# ~45 kubernetes.core module runs in two ansible-playbook runs: CPU-bound, 30-60 s on a 2-core machine.
pytestmark = pytest.mark.slow

FAKE_HELM = REPO / "tests" / "integration" / "k8s" / "fake_helm.py"
DIGEST = "sha256:" + "ab" * 32

GPU_LABEL = "cloud.google.com/gke-accelerator"


def node(name, gpu_pool=True):
    labels = {"kubernetes.io/hostname": name}
    if gpu_pool:
        labels[GPU_LABEL] = "nvidia-tesla-t4"
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "3920m", "memory": "12Gi", "pods": "110"}}}


def gpus_after(polls, names):
    """on_read hook: the named nodes report one GPU from the polls-th list on."""
    state = {"lists": 0}

    def hook(api, verb):
        state["lists"] += verb == "list"
        if state["lists"] >= polls:
            for name in names:
                api.get("nodes", name)["status"]["allocatable"]["nvidia.com/gpu"] = "1"
    return hook


def gmp_crds(api):
    for name in ("podmonitorings.monitoring.googleapis.com", "rules.monitoring.googleapis.com"):
        api.put({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                 "metadata": {"name": name}, "spec": {}})


def apiservices_available_after(polls):
    """on_read hook: APIServices backed by an existing Service become Available from the polls-th list on."""
    state = {"lists": 0}

    def hook(api, verb):
        state["lists"] += verb == "list"
        for service in api.items("apiservices"):
            backend = service["spec"]["service"]
            ready = state["lists"] >= polls and api.get("services", backend["name"], backend["namespace"])
            service["status"] = {"conditions": [{
                "type": "Available", "status": "True" if ready else "False",
                "reason": "Passed" if ready else "MissingEndpoints",
                "message": "all checks passed" if ready else
                f'endpoints for service/{backend["name"]} in "{backend["namespace"]}" have no addresses'}]}
    return hook


def status_after(plural, reads, status):
    """on_read hook: every object of plural gets this status from the reads-th get by name on."""
    state = {"reads": 0}

    def hook(api, verb):
        state["reads"] += verb == "get"
        if state["reads"] >= reads:
            for obj in api.items(plural):
                obj["status"] = status
    return hook


def hooks(**by_plural):
    return lambda api: api.on_read.update(by_plural)


AVAILABLE = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
EXTERNAL_METRIC = "prometheus.googleapis.com|triton_queue_duration_us_per_request|gauge"
SCALING_ACTIVE = {"conditions": [
    {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
    {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound",
     "message": f"the HPA was able to successfully calculate a replica count from external metric {EXTERNAL_METRIC}"}]}
METRIC_MISSING = {"conditions": [
    {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
    {"type": "ScalingActive", "status": "False", "reason": "FailedGetExternalMetric",
     "message": f"the HPA was unable to compute the replica count: unable to get external metric "
                f"triton/{EXTERNAL_METRIC}: no metrics returned from external metrics API"}]}
LB_READY = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}

FAST = {"gpu_drivers_poll_interval": 1, "metrics_adapter_poll_interval": 1, "triton_helm_poll_interval": 1}
HELM = {"triton_fil_image": {"ref": f"us-docker.pkg.dev/my-project/triton/tritonserver@{DIGEST}"},
        "triton_fil_model_repository_uri": "gs://my-project-triton-models/triton/model_repository",
        "triton_fil_cluster": {"name": "triton-fil-dev", "project": "my-project"},
        "triton_helm_timeout": 30, "triton_helm_hpa_timeout": 30, "triton_helm_service_timeout": 30}
# host -> (role variables, setup(api))
SCENARIOS = {
    "managed": ({"gpu_drivers_min_nodes": 2, "gpu_drivers_timeout": 30, "metrics_adapter_timeout": 30,
                 "metrics_adapter_gcp_service_account": ""},
                lambda api: (api.put(node("gpu-a")), api.put(node("gpu-b")), api.put(node("cpu-a", gpu_pool=False)),
                             api.on_read.update(nodes=gpus_after(2, ["gpu-a", "gpu-b"]),
                                                apiservices=apiservices_available_after(2)), gmp_crds(api))),
    "daemonset": ({"gpu_drivers_mode": "daemonset", "gpu_drivers_node_os": "ubuntu", "gpu_drivers_timeout": 30,
                   "metrics_adapter_timeout": 30},
                  lambda api: (api.put(node("gpu-a")),
                               api.on_read.update(nodes=gpus_after(1, ["gpu-a"]),
                                                  apiservices=apiservices_available_after(1)), gmp_crds(api))),
    "gpu-deadline": ({"gpu_drivers_min_nodes": 2, "gpu_drivers_timeout": 1},
                     lambda api: (api.put(node("gpu-a")), api.put(node("gpu-b")),
                                  api.on_read.update(nodes=gpus_after(1, ["gpu-a"])))),
    "no-gmp": ({"metrics_adapter_timeout": 0}, lambda api: None),
    "apiservice-deadline": ({"metrics_adapter_timeout": 1},
                            lambda api: (gmp_crds(api), api.on_read.update(
                                apiservices=apiservices_available_after(10_000)))),
    "helm-clusterip": (HELM, hooks(deployments=status_after("deployments", 2, AVAILABLE),
                                   horizontalpodautoscalers=status_after("horizontalpodautoscalers", 1,
                                                                         SCALING_ACTIVE))),
    "helm-lb": ({**HELM, "triton_helm_service_type": "LoadBalancer"},
                hooks(deployments=status_after("deployments", 1, AVAILABLE),
                      horizontalpodautoscalers=status_after("horizontalpodautoscalers", 1, SCALING_ACTIVE),
                      services=status_after("services", 2, LB_READY))),
    "helm-hpa-deadline": ({**HELM, "triton_helm_hpa_timeout": 1},
                          hooks(deployments=status_after("deployments", 1, AVAILABLE),
                                horizontalpodautoscalers=status_after("horizontalpodautoscalers", 1,
                                                                      METRIC_MISSING))),
}
PLAYBOOK = """\
- name: The Kubernetes roles against fake API servers
  hosts: all
  gather_facts: false
  roles:
    - role: rapids.triton_fil.gpu_drivers
      when: "'helm' not in group_names and 'adapter' not in group_names"
    - role: rapids.triton_fil.metrics_adapter
      when: "'helm' not in group_names"
    - role: rapids.triton_fil.triton_helm
      when: "'helm' in group_names"
"""


def inventory(path, servers, hosts, helm_binary):
    def host_vars(host):
        return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "triton_fil_kubeconfig": servers[host].kubeconfig_path, "gcp_project": "my-project",
                "triton_helm_binary": str(helm_binary), **FAST, **SCENARIOS[host][0]}
    groups = {"helm": [h for h in hosts if h.startswith("helm-")],
              "adapter": [h for h in hosts if h in ("no-gmp", "apiservice-deadline")]}
    path.write_text(yaml.safe_dump({"all": {
        "hosts": {host: host_vars(host) for host in hosts},
        "children": {name: {"hosts": {h: None for h in members}} for name, members in groups.items() if members}}}))
    return path


Runs = namedtuple("Runs", "servers first changes second tmp")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(servers, first run of every scenario, changes after it, second run of the successful ones)."""
    tmp = tmp_path_factory.mktemp("fake-api")
    (tmp / "play.yml").write_text(PLAYBOOK)
    helm = tmp / "helm"
    helm.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_HELM}" "$@"\n')
    helm.chmod(0o755)
    with ExitStack() as stack:
        servers = {}
        for host, scenario in SCENARIOS.items():
            servers[host] = stack.enter_context(FakeApiServer())
            servers[host].kubeconfig_path = str(servers[host].kubeconfig(tmp / f"{host}.kubeconfig"))
            scenario[1](servers[host])
        env = {"FAKE_HELM_STATE_DIR": str(tmp)}
        first = run_playbook(tmp / "play.yml", inventory=inventory(tmp / "first.yml", servers, SCENARIOS, helm),
                             env=env, timeout=300)
        changes = {host: list(server.changes) for host, server in servers.items()}
        again = ["daemonset", "helm-clusterip"]
        second = run_playbook(tmp / "play.yml", inventory=inventory(tmp / "second.yml", servers, again, helm),
                              env=env, timeout=300)
        runs_dir = tmp
        yield Runs(servers, first, changes, second, runs_dir)


def messages(result):
    msg = result.get("msg", "")
    return " ".join(msg) if isinstance(msg, list) else msg


def test_every_scenario_ends_as_expected(runs):
    first, second = runs.first, runs.second
    stats = first.stats
    assert {h for h, s in stats.items() if s.get("failures")} == {
        "gpu-deadline", "no-gmp", "apiservice-deadline", "helm-hpa-deadline"}, first.stdout
    assert second.rc == 0 and second.failed == 0, second.stdout


def test_gpu_drivers_waits_until_every_gpu_node_has_gpus(runs):
    servers, first = runs.servers, runs.first
    wait = first.result("Wait until every GPU node reports allocatable nvidia.com/gpu (one retry line per poll)",
                        host="managed")
    assert wait["attempts"] == 2
    report = messages(first.result("Report the GPU nodes", host="managed"))
    assert "2 GPU node(s) ready after 2 poll(s): gpu-a=1, gpu-b=1" in report
    assert servers["managed"].items("daemonsets") == [], "gke_managed mode applies no DaemonSet"


def test_gpu_drivers_fails_at_the_deadline_naming_the_nodes(runs):
    servers, first = runs.servers, runs.first
    msg = messages(first.result("Explain which GPU nodes are not ready", host="gpu-deadline"))
    assert "2 node(s) labelled cloud.google.com/gke-accelerator (at least 2 wanted)" in msg
    assert "without allocatable nvidia.com/gpu: gpu-b." in msg
    assert "GKE-managed driver installation" in msg
    assert servers["gpu-deadline"].changes == []


def test_gpu_drivers_daemonset_mode_applies_the_pinned_installer(runs):
    servers, first = runs.servers, runs.first
    daemonset = servers["daemonset"].get("daemonsets", "nvidia-driver-installer", "kube-system")
    assert daemonset["spec"]["template"]["spec"]["initContainers"][0]["image"] == "gke-nvidia-installer:fixed"
    assert first.result("Apply NVIDIA's driver installer DaemonSet for the node image", host="daemonset")["changed"] is True


def test_metrics_adapter_applies_under_workload_identity_and_waits(runs):
    servers, first, changes = runs.servers, runs.first, runs.changes
    api = servers["daemonset"]
    account = api.get("serviceaccounts", "custom-metrics-stackdriver-adapter", "custom-metrics")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == \
        "triton-fil-metrics@my-project.iam.gserviceaccount.com"
    assert {a["metadata"]["name"] for a in api.items("apiservices")} == {
        "v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io"}
    deployment = api.get("deployments", "custom-metrics-stackdriver-adapter", "custom-metrics")
    manifest = yaml.safe_load((REPO / "roles" / "metrics_adapter" / "files" /
                               "custom-metrics-stackdriver-adapter.yaml").read_text())
    pinned = next(o for o in manifest["items"] if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        pinned["spec"]["template"]["spec"]["containers"][0]["image"]
    created = [c for c in changes["daemonset"] if c[0] == "POST" and c[1] != "daemonsets"]
    assert len(created) == 13 and created[0][1] == "namespaces" and created[1][1] == "serviceaccounts"
    wait = first.result("Wait until every APIService of the adapter is Available (one retry line per poll)",
                        host="managed")
    assert wait["attempts"] == 2
    # Without a Google service account the adapter's own principal is used: no annotation.
    bare = servers["managed"].get("serviceaccounts", "custom-metrics-stackdriver-adapter", "custom-metrics")
    assert "iam.gke.io/gcp-service-account" not in bare["metadata"].get("annotations", {})


def test_second_run_changes_nothing(runs):
    servers, changes, second = runs.servers, runs.changes, runs.second
    assert second.changed == 0, second.stdout
    assert second.result("Apply NVIDIA's driver installer DaemonSet for the node image")["changed"] is False
    assert second.result("Install or upgrade the Triton release (atomic, so a failed upgrade rolls back)")[
        "changed"] is False
    for host in second.stats:
        assert servers[host].changes == changes[host], f"{host}: a second run changed objects"


def test_metrics_adapter_names_the_apiservice_that_is_not_available(runs):
    first = runs.first
    msg = messages(first.result("Explain which APIService is not Available", host="apiservice-deadline"))
    assert ("not Available: v1beta1.custom.metrics.k8s.io, v1beta2.custom.metrics.k8s.io, "
            "v1beta1.external.metrics.k8s.io") in msg
    assert "have no addresses" in msg
    assert "roles/monitoring.viewer" in msg


def test_metrics_adapter_requires_managed_prometheus(runs):
    servers, first = runs.servers, runs.first
    msg = messages(first.result("Explain that Managed Service for Prometheus is off", host="no-gmp"))
    assert "podmonitorings.monitoring.googleapis.com, rules.monitoring.googleapis.com" in msg
    assert servers["no-gmp"].changes == [], "nothing is applied before the check passes"


def helm_result(run, host):
    return run.result("Install or upgrade the Triton release (atomic, so a failed upgrade rolls back)", host=host)


def endpoint(run, host):
    return run.result("Hand the Triton endpoint to the verify role", host=host)["ansible_facts"]["triton_fil_endpoint"]


def test_triton_helm_installs_the_chart_and_hands_over_the_in_cluster_endpoint(runs):
    servers, first = runs.servers, runs.first
    api = servers["helm-clusterip"]
    assert helm_result(first, "helm-clusterip")["changed"] is True
    kinds = sorted(o["kind"] for plural in ("serviceaccounts", "services", "deployments", "horizontalpodautoscalers",
                                            "poddisruptionbudgets", "podmonitorings", "rules")
                   for o in api.items(plural))
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "PodMonitoring", "Rules",
                     "Service", "ServiceAccount"]
    deployment = api.get("deployments", "triton-fil", "triton")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith("@" + DIGEST)
    account = api.get("serviceaccounts", "triton-fil", "triton")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == \
        "triton-fil@my-project.iam.gserviceaccount.com"
    hpa = api.get("horizontalpodautoscalers", "triton-fil", "triton")
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"][
        "resource.labels.cluster"] == "triton-fil-dev"
    wait = first.result("Wait until the Deployment has its minimum of available Triton pods", host="helm-clusterip")
    assert wait["attempts"] == 2
    assert endpoint(first, "helm-clusterip") == {
        "http_url": "http://triton-fil.triton.svc.cluster.local:8000",
        "grpc_url": "triton-fil.triton.svc.cluster.local:8001",
        "metrics_url": "http://triton-fil.triton.svc.cluster.local:8002/metrics"}


def test_triton_helm_waits_for_the_internal_load_balancer_address(runs):
    servers, first = runs.servers, runs.first
    service = servers["helm-lb"].get("services", "triton-fil", "triton")
    assert service["metadata"]["annotations"] == {"networking.gke.io/load-balancer-type": "Internal"}
    wait = first.result("Read the Service (and wait for the load balancer's address)", host="helm-lb")
    assert wait["attempts"] == 2
    assert endpoint(first, "helm-lb") == {"http_url": "http://192.0.2.10:8000", "grpc_url": "192.0.2.10:8001",
                                          "metrics_url": "http://192.0.2.10:8002/metrics"}


def test_triton_helm_explains_an_hpa_that_cannot_read_its_metric(runs):
    first = runs.first
    msg = messages(first.result("Explain what did not become ready", host="helm-hpa-deadline"))
    assert f"The HPA cannot read {EXTERNAL_METRIC}" in msg
    assert "no metrics returned from external metrics API" in msg
    assert "metrics_adapter" in msg


def test_triton_helm_second_run_does_not_upgrade(runs):
    port = runs.servers["helm-clusterip"].url.rsplit(":", 1)[1]
    state = yaml.safe_load((runs.tmp / f"{port}.json").read_text())
    assert state["upgrades"] == 1
    assert state["releases"]["triton-fil"]["revision"] == "1"
