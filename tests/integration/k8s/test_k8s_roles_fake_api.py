"""gpu_drivers and metrics_adapter through ansible-playbook against in-memory API servers.

One fake API server per scenario, one inventory host per server, so a single ansible-playbook run plays
every scenario in parallel (forks); a second run on the successful hosts shows that nothing changes.
Checked: what the roles apply, their waits (attempts, deadline, the message that names what is missing).
triton_helm's install needs a real API server for helm; its rendering is covered by test_k8s_chart.py.
"""

from __future__ import annotations

import sys
from collections import namedtuple
from contextlib import ExitStack

import pytest
import yaml

from fake_apiserver import FakeApiServer
from testlib import run_playbook

GPU_LABEL = "cloud.google.com/gke-accelerator"


def node(name, gpu_pool=True):
    labels = {"kubernetes.io/hostname": name}
    if gpu_pool:
        labels[GPU_LABEL] = "nvidia-tesla-t4"
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "3920m", "memory": "12Gi", "pods": "110"}}}


def gpus_after(polls, names):
    """on_list hook: the named nodes report one GPU from the polls-th list on."""
    state = {"lists": 0}

    def hook(api):
        state["lists"] += 1
        if state["lists"] >= polls:
            for name in names:
                api.get("nodes", name)["status"]["allocatable"]["nvidia.com/gpu"] = "1"
    return hook


def gmp_crds(api):
    for name in ("podmonitorings.monitoring.googleapis.com", "rules.monitoring.googleapis.com"):
        api.put({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                 "metadata": {"name": name}, "spec": {}})


def apiservices_available_after(polls):
    """on_list hook: APIServices backed by an existing Service become Available from the polls-th list on."""
    state = {"lists": 0}

    def hook(api):
        state["lists"] += 1
        for service in api.items("apiservices"):
            backend = service["spec"]["service"]
            ready = state["lists"] >= polls and api.get("services", backend["name"], backend["namespace"])
            service["status"] = {"conditions": [{
                "type": "Available", "status": "True" if ready else "False",
                "reason": "Passed" if ready else "MissingEndpoints",
                "message": "all checks passed" if ready else
                f'endpoints for service/{backend["name"]} in "{backend["namespace"]}" have no addresses'}]}
    return hook


FAST = {"gpu_drivers_poll_interval": 1, "metrics_adapter_poll_interval": 1}
# host -> (role variables, setup(api))
SCENARIOS = {
    "managed": ({"gpu_drivers_min_nodes": 2, "gpu_drivers_timeout": 30, "metrics_adapter_timeout": 30,
                 "metrics_adapter_gcp_service_account": ""},
                lambda api: (api.put(node("gpu-a")), api.put(node("gpu-b")), api.put(node("cpu-a", gpu_pool=False)),
                             api.on_list.update(nodes=gpus_after(2, ["gpu-a", "gpu-b"]),
                                                apiservices=apiservices_available_after(2)), gmp_crds(api))),
    "daemonset": ({"gpu_drivers_mode": "daemonset", "gpu_drivers_node_os": "ubuntu", "gpu_drivers_timeout": 30,
                   "metrics_adapter_timeout": 30},
                  lambda api: (api.put(node("gpu-a")),
                               api.on_list.update(nodes=gpus_after(1, ["gpu-a"]),
                                                  apiservices=apiservices_available_after(1)), gmp_crds(api))),
    "gpu-deadline": ({"gpu_drivers_min_nodes": 2, "gpu_drivers_timeout": 1},
                     lambda api: (api.put(node("gpu-a")), api.put(node("gpu-b")),
                                  api.on_list.update(nodes=gpus_after(1, ["gpu-a"])))),
    "no-gmp": ({"metrics_adapter_timeout": 0},
               lambda api: (api.put(node("gpu-a")), api.on_list.update(nodes=gpus_after(1, ["gpu-a"])))),
    "apiservice-deadline": ({"metrics_adapter_timeout": 1},
                            lambda api: (api.put(node("gpu-a")), gmp_crds(api),
                                         api.on_list.update(nodes=gpus_after(1, ["gpu-a"]),
                                                            apiservices=apiservices_available_after(10_000)))),
}
PLAYBOOK = """\
- name: GPU drivers and the metrics adapter against fake API servers
  hosts: all
  gather_facts: false
  roles:
    - role: rapids.triton_fil.gpu_drivers
    - role: rapids.triton_fil.metrics_adapter
"""


def inventory(path, servers, hosts):
    path.write_text(yaml.safe_dump({"all": {"hosts": {
        host: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
               "triton_fil_kubeconfig": servers[host].kubeconfig_path, "gcp_project": "my-project",
               **FAST, **SCENARIOS[host][0]} for host in hosts}}}))
    return path


Runs = namedtuple("Runs", "servers first changes second")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(servers, first run of every scenario, changes after it, second run of the successful ones)."""
    tmp = tmp_path_factory.mktemp("fake-api")
    (tmp / "play.yml").write_text(PLAYBOOK)
    with ExitStack() as stack:
        servers = {}
        for host, scenario in SCENARIOS.items():
            servers[host] = stack.enter_context(FakeApiServer())
            servers[host].kubeconfig_path = str(servers[host].kubeconfig(tmp / f"{host}.kubeconfig"))
            scenario[1](servers[host])
        first = run_playbook(tmp / "play.yml", inventory=inventory(tmp / "first.yml", servers, SCENARIOS), timeout=300)
        changes = {host: list(server.changes) for host, server in servers.items()}
        again = ["daemonset"]
        second = run_playbook(tmp / "play.yml", inventory=inventory(tmp / "second.yml", servers, again), timeout=300)
        yield Runs(servers, first, changes, second)


def messages(result):
    msg = result.get("msg", "")
    return " ".join(msg) if isinstance(msg, list) else msg


def test_every_scenario_ends_as_expected(runs):
    first, second = runs.first, runs.second
    stats = first.stats
    assert {h for h, s in stats.items() if s.get("failures")} == {"gpu-deadline", "no-gmp", "apiservice-deadline"}, \
        first.stdout
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
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v0.15.1-gke.0")
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
    assert servers["daemonset"].changes == changes["daemonset"], "a second run changed objects"


def test_metrics_adapter_names_the_apiservice_that_is_not_available(runs):
    first = runs.first
    msg = messages(first.result("Explain which APIService is not Available", host="apiservice-deadline"))
    assert "not Available: v1beta1.custom.metrics.k8s.io, v1beta1.external.metrics.k8s.io" in msg
    assert "have no addresses" in msg
    assert "roles/monitoring.viewer" in msg


def test_metrics_adapter_requires_managed_prometheus(runs):
    servers, first = runs.servers, runs.first
    msg = messages(first.result("Explain that Managed Service for Prometheus is off", host="no-gmp"))
    assert "podmonitorings.monitoring.googleapis.com, rules.monitoring.googleapis.com" in msg
    assert servers["no-gmp"].changes == [], "nothing is applied before the check passes"
