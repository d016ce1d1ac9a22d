"""gpu_drivers, triton_helm and the generic Kubernetes target against the real local control plane.

What only a real API server, scheduler and controllers show: the scheduler placing the driver installer and
Triton by selectors, taints and GPU capacity; the HPA controller reading the external metric through the
aggregation layer and scaling the Deployment; helm --atomic --wait rolling a failed upgrade back; RBAC
deciding what the deployer may do on a cluster that is not GKE.
"""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from rehearsal_lib import INVENTORY, admin_client, control, deployment, helm, image_and_models, role, wait_until
from testlib import REPO, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.rehearsal]


def test_gpu_drivers_installs_on_a_pool_without_gke_drivers(rehearsal, converged, tmp_path):
    """daemonset mode: the pinned installer is scheduled onto the driverless pool's nodes (its affinity skips
    nodes whose drivers GKE manages), and the GPUs appear once it runs there."""
    pool = textwrap.dedent("""
        - hosts: triton_fil
          gather_facts: false
          tasks:
            - name: pool
              rapids.triton_fil.gke_node_pool:
                cluster: triton-fil
                location: us-central1-a
                name: byod-gpu
                machine_type: n1-standard-4
                accelerator_type: nvidia-tesla-t4
                accelerator_count: 1
                gpu_driver_version: INSTALLATION_DISABLED
                initial_node_count: 1
                labels: {drivers: byod}
                wait_timeout: 60
                poll_interval: 1
                api_endpoint: "{{ gke_cluster_api_endpoint }}"
                project: "{{ gcp_project }}"
                auth_kind: serviceaccount
                service_account_file: "{{ gcp_service_account_file }}"
    """)
    made = run_playbook(pool, inventory=INVENTORY, tmp_path=tmp_path, env=rehearsal)
    assert made.rc == 0, made.stdout[-3000:]
    byod = {"gpu_drivers_node_label": "drivers=byod", "gpu_drivers_min_nodes": 1, "gpu_drivers_poll_interval": 1}

    waiting = role(rehearsal, "gpu_drivers", tmp_path, gpu_drivers_mode="wait", gpu_drivers_timeout=3, **byod)
    assert waiting.rc != 0
    msg = waiting.result("Explain which GPU nodes are not ready")["msg"]
    assert "1 node(s) labelled drivers=byod (at least 1 wanted); without allocatable nvidia.com/gpu: gke-" in msg
    assert "The cluster must install the NVIDIA driver and device plugin" in msg

    first = role(rehearsal, "gpu_drivers", tmp_path, gpu_drivers_mode="daemonset", **byod)
    assert first.rc == 0, first.stdout[-3000:]
    assert "1 GPU node(s) ready after" in first.result("Report the GPU nodes")["msg"]
    import kubernetes  # pylint: disable=import-outside-toplevel
    core = kubernetes.client.CoreV1Api(admin_client(rehearsal))
    installers = core.list_namespaced_pod("kube-system", label_selector="k8s-app=nvidia-driver-installer").items
    nodes = {n.metadata.name: n.metadata.labels for n in core.list_node().items}
    assert installers and all(nodes[p.spec.node_name].get("drivers") == "byod" for p in installers), (
        "the installer runs on the driverless pool only, not where GKE manages the drivers")

    control(rehearsal, "/mark", {})
    again = role(rehearsal, "gpu_drivers", tmp_path, gpu_drivers_mode="daemonset", **byod)
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]
    assert control(rehearsal, "/writes")["kubernetes"] == []


def test_the_hpa_scales_triton_out_and_back_in(rehearsal, converged):
    """The real HPA controller reads prometheus.googleapis.com|triton_queue_duration_us_per_request|gauge
    through the aggregated external metrics API (metrics adapter <- Cloud Monitoring) and follows it."""
    assert deployment(rehearsal).spec.replicas == 1
    control(rehearsal, "/metric", {"value": 50000, "seconds": 120})  # 50 ms queue time, target 20 ms
    wait_until(lambda: deployment(rehearsal).status.ready_replicas == 2, 90, "scale out to 2 ready replicas")
    control(rehearsal, "/metric", {"value": 0, "seconds": 120})
    wait_until(lambda: deployment(rehearsal).spec.replicas == 1, 90, "scale back in to 1 replica")


def test_a_failed_upgrade_is_rolled_back(rehearsal, converged, tmp_path):
    """helm --atomic --wait: pods that can never be scheduled (8 GPUs each) fail the upgrade, helm rolls the
    release back, the old pod serves throughout, and the role says what did not become ready."""
    image, models = image_and_models(rehearsal)
    before = json.loads(helm(rehearsal, "history", "triton-fil", "-n", "triton", "-o", "json"))
    failed = role(rehearsal, "triton_helm", tmp_path, triton_helm_gpu_count=8, triton_helm_timeout=15,
                  triton_helm_image=image, triton_helm_model_repository_uri=models)
    assert failed.rc != 0
    msg = failed.result("Install or upgrade the Triton release (atomic, so a failed upgrade rolls back)")["msg"]
    assert "has been rolled back due to atomic being set" in msg or "rolled back" in msg, msg
    after = json.loads(helm(rehearsal, "history", "triton-fil", "-n", "triton", "-o", "json"))
    assert [r["status"] for r in after[len(before):]] == ["failed", "deployed"]
    assert "Rollback" in after[-1]["description"]
    limits = deployment(rehearsal).spec.template.spec.containers[0].resources.limits
    assert limits["nvidia.com/gpu"] == "1"
    assert deployment(rehearsal).status.ready_replicas >= 1


def test_the_role_explains_an_hpa_that_cannot_read_its_metric(rehearsal, converged, tmp_path):
    image, models = image_and_models(rehearsal)
    unread = {"name": "nobody_records_this", "expr": 'sum(rate(nv_inference_count{job="__JOB__"}[2m]))',
              "target_type": "Value", "target": "1"}
    run = role(rehearsal, "triton_helm", tmp_path, triton_helm_autoscaling_metric=unread, triton_helm_hpa_timeout=20,
               triton_helm_image=image, triton_helm_model_repository_uri=models)
    assert run.rc != 0
    msg = run.result("Explain what did not become ready")["msg"]
    assert "The HPA cannot read prometheus.googleapis.com|nobody_records_this|gauge" in msg
    assert "no time series of prometheus.googleapis.com/nobody_records_this/gauge" in msg
    restored = role(rehearsal, "triton_helm", tmp_path, triton_helm_image=image,
                    triton_helm_model_repository_uri=models)
    assert restored.rc == 0, restored.stdout[-3000:]


def user_kubeconfig(env, path, identity):
    """A kubeconfig as a user of another cluster would have it: the cluster's CA and an exec credential plugin
    (here gke-gcloud-auth-plugin with ADC from the identity's key file)."""
    name = f"rehearsal-{identity}"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": env["TRITON_FIL_KUBE_SERVER"],
                                                "certificate-authority": env["TRITON_FIL_KUBE_CA"]}}],
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
            "args": ["--use_application_default_credentials"], "interactiveMode": "Never",
            "env": [{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": env[f"TRITON_FIL_{identity.upper()}_KEY"]}],
            "provideClusterInfo": True}}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }))
    return path, name


def test_a_kubernetes_target_deployed_from_scratch_by_the_deployer(rehearsal, converged, tmp_path):
    """triton_fil_target=kubernetes: the cluster's creator binds the deployer once, then the deployer alone
    installs Triton in a namespace of its own, verifies it, and converges a second time without writes."""
    image, _models = image_and_models(rehearsal)
    admin, admin_context = user_kubeconfig(rehearsal, tmp_path / "admin.yaml", "creator")
    mine, context = user_kubeconfig(rehearsal, tmp_path / "deployer.yaml", "deployer")
    host = {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "triton_fil_target": "kubernetes", "triton_fil_kubeconfig": str(mine), "triton_fil_kube_context": context,
        "gcp_project": rehearsal["TRITON_FIL_PROJECT"], "gcp_auth_kind": "serviceaccount",
        "gcp_service_account_file": rehearsal["TRITON_FIL_DEPLOYER_KEY"],
        "gcp_storage_endpoint": rehearsal["TRITON_FIL_GCS_ENDPOINT"],
        "gcs_models_bucket": rehearsal["TRITON_FIL_BUCKET"], "gcs_models_prefix": rehearsal["TRITON_FIL_PREFIX"],
        "gcs_models_bucket_location": "US-CENTRAL1",
        "triton_fil_image_enabled": False, "triton_helm_image": image,
        "triton_helm_namespace": "triton-k8s", "triton_helm_release": "triton-k8s",
        "triton_helm_timeout": 120, "triton_helm_poll_interval": 1,
        # This cluster's GPU nodes carry GKE's label, not GPU feature discovery's.
        "gpu_drivers_node_label": "cloud.google.com/gke-accelerator", "gpu_drivers_poll_interval": 1,
        "verify_timeout": 120, "verify_load_duration": 1,
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"triton_fil": {"hosts": {"any-cluster": host}}}))
    bootstrap = textwrap.dedent("""
        - hosts: triton_fil
          gather_facts: false
          tasks:
            - name: Bind the deployer
              ansible.builtin.include_role:
                name: rapids.triton_fil.gke_cluster
                tasks_from: deployer
    """)
    bound = run_playbook(bootstrap, inventory=inventory, tmp_path=tmp_path, env=rehearsal, extra_vars={
        "triton_fil_kubeconfig": str(admin), "triton_fil_kube_context": admin_context,
        "gke_cluster_deployer": f"serviceAccount:{rehearsal['TRITON_FIL_DEPLOYER']}"})
    assert bound.rc == 0, bound.stdout[-3000:]

    control(rehearsal, "/mark", {})
    first = run_playbook(REPO / "playbooks" / "site.yml", inventory=inventory, env=rehearsal)
    assert first.rc == 0, first.stdout[-6000:]
    assert first.result("One line per deployment (a failed one does not stop the others)")["results"][0]["msg"] == (
        "any-cluster: VERIFIED at http://triton-k8s.triton-k8s.svc.cluster.local:8000")
    made = [w for w in control(rehearsal, "/writes")["kubernetes"] if "/namespaces/triton-k8s/" in w]
    assert made and all(w.startswith(rehearsal["TRITON_FIL_DEPLOYER"]) for w in made)
    import kubernetes  # pylint: disable=import-outside-toplevel
    release = kubernetes.client.AppsV1Api(admin_client(rehearsal)).read_namespaced_deployment(
        "triton-k8s", "triton-k8s")
    assert release.spec.replicas == 1 and not release.spec.template.spec.node_selector

    control(rehearsal, "/mark", {})
    second = run_playbook(REPO / "playbooks" / "site.yml", inventory=inventory, env=rehearsal)
    assert second.rc == 0 and second.changed == 0, second.stdout[-4000:]
    assert not any(control(rehearsal, "/writes").values())


def test_the_metrics_adapter_runs_under_workload_identity_and_is_available(rehearsal, converged, tmp_path):
    import kubernetes  # pylint: disable=import-outside-toplevel
    client = admin_client(rehearsal)
    account = kubernetes.client.CoreV1Api(client).read_namespaced_service_account(
        "custom-metrics-stackdriver-adapter", "custom-metrics")
    assert account.metadata.annotations["iam.gke.io/gcp-service-account"] == (
        f"triton-fil-metrics@{rehearsal['TRITON_FIL_PROJECT']}.iam.gserviceaccount.com")
    services = kubernetes.client.ApiregistrationV1Api(client).list_api_service().items
    available = {s.metadata.name for s in services
                 if any(c.type == "Available" and c.status == "True" for c in s.status.conditions or [])}
    assert {"v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io",
            "v1beta1.external.metrics.k8s.io"} <= available

    run = role(rehearsal, "metrics_adapter", tmp_path, metrics_adapter_timeout=2,
               metrics_adapter_apiservices=["v1beta1.external.metrics.k8s.io", "v1beta1.nothing.example.com"])
    assert run.rc != 0
    msg = run.result("Explain which APIService is not Available")["msg"]
    assert "not Available: v1beta1.nothing.example.com" in msg and "roles/monitoring.viewer" in msg
