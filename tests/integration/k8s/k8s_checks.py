"""Offline checks of what the Kubernetes roles install: render, schema, policy, autoscaling chain.

Everything here runs without a cluster: the triton chart is rendered with `helm template` from values
computed by the triton_helm role itself (playbooks/render_chart.yml), every object is validated against
the Kubernetes OpenAPI schemas of kubernetes-validate (and GMP subset schemas for the two CRDs), and the
policy and autoscaling-chain rules are plain functions that return a list of problems, so the negative
tests can show that each rule really fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from testlib import REPO

HELM = str(REPO / ".tools" / "bin" / "helm")
HELM4 = str(REPO / ".tools" / "bin" / "helm4")  # helm 4.1 (scripts/bootstrap.sh); the role supports both majors
HELMS = {"helm3": HELM, "helm4": HELM4}
CHART = REPO / "roles" / "triton_helm" / "files" / "triton"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
INVENTORIES = sorted(p.name for p in (REPO / "inventories").iterdir() if (p / "hosts.yml").is_file())

# GKE minors the rendered objects must be valid for: the oldest we support and a current REGULAR-channel
# one (kubernetes-validate 1.37.0 ships schemas for 1.25 .. 1.37). Override: TRITON_FIL_K8S_VERSIONS=1.33,1.35
K8S_VERSIONS = tuple(f"{v.strip()}.0" if v.count(".") == 1 else v.strip()
                     for v in os.environ.get("TRITON_FIL_K8S_VERSIONS", "1.34,1.36").split(","))

# The CRDs kubernetes-validate does not know: GMP's PodMonitoring and Rules, with the schemas of their
# pinned upstream CRDs (the same documents the local control plane installs; local_stack/controlplane/manifests).
GMP_CRDS = REPO / "local_stack" / "controlplane" / "manifests" / "gmp-crds.json"


def strict(schema):
    """The schema with unknown fields refused, as the API server's strict field validation refuses them
    (fieldValidation=Strict, what kubectl --validate=strict asks); without it a structural schema only prunes."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def _crd_schemas():
    schemas = {}
    for crd in json.loads(GMP_CRDS.read_text())["items"]:
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            openapi = version["schema"]["openAPIV3Schema"]
            # metadata is checked by the API server itself (the CRD says only "type: object").
            openapi = {**openapi, "properties": {**openapi["properties"], "metadata": {"type": "object"}}}
            schemas[(api_version, crd["spec"]["names"]["kind"])] = strict(openapi)
    return schemas


CRD_SCHEMAS = _crd_schemas()

# Metric families tritonserver exports on its metrics port (Triton docs, user_guide/metrics.md): the only
# series a PodMonitoring on port 8002 can deliver, so the only ones an autoscaling expression may use.
TRITON_METRICS = frozenset({
    # counters
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us", "nv_cache_num_hits_per_model", "nv_cache_num_misses_per_model",
    "nv_cache_hit_duration_per_model", "nv_cache_miss_duration_per_model", "nv_energy_consumption",
    # gauges
    "nv_inference_pending_request_count", "nv_gpu_utilization", "nv_gpu_memory_total_bytes",
    "nv_gpu_memory_used_bytes", "nv_gpu_power_usage", "nv_gpu_power_limit", "nv_cpu_utilization",
    "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes", "nv_pinned_memory_pool_total_bytes",
    "nv_pinned_memory_pool_used_bytes",
})

DIGEST_REF = re.compile(r"^[a-z0-9][^@\s]*@sha256:[0-9a-f]{64}$")
GKE_INTERNAL_LB = "networking.gke.io/load-balancer-type"
WI_ANNOTATION = "iam.gke.io/gcp-service-account"
GPU_NODE_LABEL = "cloud.google.com/gke-accelerator"


# ---------------------------------------------------------------------------------------------- rendering

def helm(*args, check=True, binary=HELM):
    if not Path(binary).is_file():
        raise AssertionError(f"{binary} is missing: run make bootstrap (scripts/bootstrap.sh installs helm 3 and helm 4)")
    proc = subprocess.run([binary, *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def load_docs(text):
    """The objects of a YAML stream; the items of a v1 List count as objects."""
    objects = []
    for doc in yaml.safe_load_all(text):
        if doc and doc.get("kind") == "List":
            objects.extend(doc.get("items") or [])
        elif doc:
            objects.append(doc)
    return objects


def template_run(values_file, release="triton-fil", namespace="triton"):
    """The helm template process of the chart (for the refusals)."""
    return helm("template", release, str(CHART), "--namespace", namespace, "-f", str(values_file), check=False)


def template(values_file, release="triton-fil", namespace="triton", binary=HELM):
    """The objects helm template renders from the chart."""
    return load_docs(helm("template", release, str(CHART), "--namespace", namespace, "-f", str(values_file),
                          binary=binary).stdout)


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def one(objects, kind):
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------------------------------------- schemas

def schema_problems(obj, versions=K8S_VERSIONS):
    """Problems of one object against the OpenAPI schema of every targeted Kubernetes version (strict)."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    crd = CRD_SCHEMAS.get((obj.get("apiVersion"), obj.get("kind")))
    if crd is not None:
        validator = jsonschema.Draft7Validator(crd)
        return [f"{name}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    problems = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{name} (Kubernetes {version}): {'.'.join(map(str, err.path))}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:
            problems.append(f"{name} (Kubernetes {version}): {err.message}")
    return problems


# ---------------------------------------------------------------------------------------------- policy

def _containers(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


def policy_problems(objects, *, public_service=False, gcs_key=False):
    """The collection's rules for the Triton release; the keyword arguments are the documented opt-ins."""
    problems = []
    # A GKE release (Managed Prometheus objects rendered) must select the GPU pool by GKE's label.
    gke = any(o["kind"] == "PodMonitoring" for o in objects)
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    for container in _containers(deployment):
        cname = container["name"]
        res = container.get("resources", {})
        for kind, keys in (("requests", ("cpu", "memory")), ("limits", ("memory", "nvidia.com/gpu"))):
            for key in keys:
                if key not in res.get(kind, {}):
                    problems.append(f"container {cname}: no resources.{kind}.{key}")
        probes = {p: container.get(p, {}).get("httpGet", {}).get("path")
                  for p in ("livenessProbe", "readinessProbe", "startupProbe")}
        if probes["livenessProbe"] != "/v2/health/live":
            problems.append(f"container {cname}: livenessProbe must GET /v2/health/live, has {probes['livenessProbe']}")
        if probes["readinessProbe"] != "/v2/health/ready":
            problems.append(f"container {cname}: readinessProbe must GET /v2/health/ready, has {probes['readinessProbe']}")
        if probes["startupProbe"] is None:
            problems.append(f"container {cname}: no startupProbe")
        else:
            startup = container["startupProbe"]
            allowed = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
            if allowed < 300:
                problems.append(f"container {cname}: startupProbe allows {allowed}s for model loading (< 300s)")
        if not DIGEST_REF.match(container.get("image", "")):
            problems.append(f"container {cname}: image {container.get('image')!r} is not pinned by digest")
        if not any(a.startswith("--model-repository=gs://") for a in container.get("args", [])):
            problems.append(f"container {cname}: no --model-repository=gs://")
        env = {e["name"] for e in container.get("env", [])}
        if "GOOGLE_APPLICATION_CREDENTIALS" in env and not gcs_key:
            problems.append(f"container {cname}: GOOGLE_APPLICATION_CREDENTIALS without the key-file opt-in")
    if gke and GPU_NODE_LABEL not in pod.get("nodeSelector", {}):
        problems.append(f"pod: no nodeSelector {GPU_NODE_LABEL}")
    if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])):
        problems.append("pod: no toleration for the nvidia.com/gpu taint")

    for service in by_kind(objects, "Service"):
        stype = service["spec"].get("type", "ClusterIP")
        internal = service["metadata"].get("annotations", {}).get(GKE_INTERNAL_LB) == "Internal"
        if stype == "NodePort" or (stype == "LoadBalancer" and not internal and not public_service):
            problems.append(f"Service {service['metadata']['name']}: public {stype} without the opt-in")

    secrets = by_kind(objects, "Secret")
    if secrets and not gcs_key:
        problems.append(f"Secrets {[s['metadata']['name'] for s in secrets]} without the key-file opt-in")
    accounts = by_kind(objects, "ServiceAccount")
    if pod.get("serviceAccountName") not in [a["metadata"]["name"] for a in accounts]:
        problems.append("pod: runs as a service account the chart does not define")
    elif not gcs_key and not any(WI_ANNOTATION in a["metadata"].get("annotations", {}) for a in accounts):
        problems.append(f"ServiceAccount: no Workload Identity annotation {WI_ANNOTATION}")

    pdbs = by_kind(objects, "PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    if not any(_selects(p["spec"]["selector"], labels) for p in pdbs):
        problems.append("no PodDisruptionBudget selects the Triton pods")
    return problems


def _selects(selector, labels):
    match = selector.get("matchLabels", {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


# ---------------------------------------------------------------------------------------------- autoscaling

PROMQL_SELECTOR = re.compile(r"\b(nv_[a-z0-9_]+)\s*(\{[^}]*\})?")


def recorded_series(rules_objects):
    """{series name: (namespace, expr)} of every recording rule."""
    series = {}
    for rules in rules_objects:
        for group in rules["spec"]["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    series[rule["record"]] = (rules["metadata"].get("namespace"), rule["expr"])
    return series


def autoscaling_chain_problems(objects, adapter_objects, waited_apiservices):
    """Every link from Triton's metrics port to the HPA's metric, checked on the rendered objects.

    Triton container (metrics port, --allow-metrics) -> PodMonitoring (selects the pods, scrapes that port,
    job = its name) -> Rules (records a series from Triton metric families of that job) -> adapter
    (serves external.metrics.k8s.io; the metrics_adapter role waits for it) -> HPA (External metric
    prometheus.googleapis.com|<recorded series>|gauge, namespace selector, targets the Deployment).
    """
    problems = []
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    if not hpas:
        return problems
    deployment = one(objects, "Deployment")
    namespace = deployment["metadata"].get("namespace")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = next((c for c in _containers(deployment) if c["name"] == "tritonserver"), _containers(deployment)[0])
    args = container.get("args", [])
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    metrics_arg = [a.split("=", 1)[1] for a in args if a.startswith("--metrics-port=")]
    if any(a in ("--allow-metrics=false", "--allow-metrics=0") for a in args):
        problems.append("tritonserver runs with --allow-metrics=false: it exports no metrics")

    scraped_jobs = set()
    for monitor in by_kind(objects, "PodMonitoring"):
        name = monitor["metadata"]["name"]
        if monitor["metadata"].get("namespace") != namespace:
            problems.append(f"PodMonitoring {name} is in namespace {monitor['metadata'].get('namespace')}, "
                            f"the Deployment in {namespace}")
            continue
        if not _selects(monitor["spec"]["selector"], labels):
            problems.append(f"PodMonitoring {name} selects {monitor['spec']['selector']}, not the Triton pods")
            continue
        for endpoint in monitor["spec"]["endpoints"]:
            port = endpoint["port"]
            number = ports.get(port) if isinstance(port, str) else port
            if number is None:
                problems.append(f"PodMonitoring {name} scrapes port {port!r}, which the container does not name")
            elif metrics_arg and str(number) != metrics_arg[0]:
                problems.append(f"PodMonitoring {name} scrapes port {number}, tritonserver serves metrics on "
                                f"--metrics-port={metrics_arg[0]}")
            else:
                scraped_jobs.add(name)
    if not scraped_jobs:
        problems.append("nothing scrapes Triton's metrics port (no matching PodMonitoring)")

    series = recorded_series(by_kind(objects, "Rules"))
    usable = {}
    for record, (rules_ns, expr) in series.items():
        where = f"recorded series {record}"
        if rules_ns != namespace:
            problems.append(f"{where}: Rules in namespace {rules_ns}, the Triton pods in {namespace}")
            continue
        selectors = PROMQL_SELECTOR.findall(expr)
        if not selectors:
            problems.append(f"{where}: expr uses no Triton metric: {expr}")
            continue
        bad = False
        for metric, matcher in selectors:
            if metric not in TRITON_METRICS:
                problems.append(f"{where}: {metric} is not a metric tritonserver exports")
                bad = True
            jobs = set(re.findall(r'job\s*=\s*"([^"]*)"', matcher or ""))
            if not jobs & scraped_jobs:
                problems.append(f"{where}: {metric}{matcher or ''} is not restricted to a scraped job "
                                f"{sorted(scraped_jobs)}")
                bad = True
        if not bad:
            usable[record] = rules_ns

    served = {(d["spec"]["group"], d["spec"]["version"]) for d in adapter_objects if d.get("kind") == "APIService"}
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref.get("kind"), ref.get("name")) != ("Deployment", deployment["metadata"]["name"]):
            problems.append(f"HPA {hpa['metadata']['name']} scales {ref}, not the Triton Deployment")
        for metric in hpa["spec"].get("metrics", []):
            kind = metric["type"]
            if kind == "Resource":
                continue
            spec = metric[{"External": "external", "Pods": "pods", "Object": "object"}[kind]]
            metric_name = spec["metric"]["name"]
            group = "external.metrics.k8s.io" if kind == "External" else "custom.metrics.k8s.io"
            if group not in {g for g, v in served}:
                problems.append(f"HPA metric {metric_name}: the adapter manifest serves no {group}")
            if not any(name.endswith("." + group) for name in waited_apiservices):
                problems.append(f"HPA metric {metric_name}: the metrics_adapter role does not wait for {group}")
            match = re.fullmatch(r"prometheus\.googleapis\.com\|([a-zA-Z_:][a-zA-Z0-9_:]*)\|gauge", metric_name)
            if not match or match.group(1) not in usable:
                problems.append(f"HPA reads {metric_name}, which nothing exports "
                                f"(recorded from scraped Triton metrics: {sorted(usable)})")
                continue
            selector = spec["metric"].get("selector", {}).get("matchLabels", {})
            if kind == "External" and selector.get("resource.labels.namespace") != usable[match.group(1)]:
                problems.append(f"HPA metric {metric_name} selects namespace "
                                f"{selector.get('resource.labels.namespace')!r}, the series is in "
                                f"{usable[match.group(1)]!r}")
    return problems


# ---------------------------------------------------------------------------------------------- manifests

def manifest_header(path):
    """The leading comment block of a pinned manifest."""
    lines = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#") or line.strip() in ("", "---"):
            lines.append(line)
        else:
            break
    return "\n".join(lines)


def images(objects):
    found = []
    for obj in objects:
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            found.append(container["image"])
    return found
