# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Live preflight checks: read-only questions to Google whose answers decide whether the run can succeed.

Every call is a GET. A problem is reported only when the answer says the run would fail (the GPU type
is not offered in a node zone, the regional GPU quota cannot hold the pool's first nodes, an API the
run calls is disabled, the bucket name belongs to someone else). When a question cannot be asked
(permission denied, the API disabled), the check is skipped with a warning saying which permission
would let it run: the deploying identity does not need those permissions to deploy.
"""

from __future__ import annotations

from urllib.parse import quote

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.gpus import QUOTA_METRICS
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.rules import REGIONAL_DEFAULT_ZONES, ZONE_RE
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.reference import host_without_port

COMPUTE_ENDPOINT = "https://compute.googleapis.com"
SERVICEUSAGE_ENDPOINT = "https://serviceusage.googleapis.com"
STORAGE_ENDPOINT = "https://storage.googleapis.com"
CONTAINER_ENDPOINT = "https://container.googleapis.com"

# The Google APIs each role calls (service names as Service Usage lists them).
ROLE_SERVICES = {
    "gke_cluster": ("container.googleapis.com", "compute.googleapis.com"),
    "gcs_models": ("storage.googleapis.com",),
    "workload_identity": ("iam.googleapis.com", "cloudresourcemanager.googleapis.com"),
    "metrics_adapter": ("monitoring.googleapis.com",),
}
ARTIFACT_REGISTRY = "artifactregistry.googleapis.com"


def required_services(roles, settings):
    services = {s for role in roles for s in ROLE_SERVICES.get(role, ())}
    registry = host_without_port(str(settings.get("gcr_image_registry") or "")).lower()
    if "gcr_image" in roles and (registry.endswith("-docker.pkg.dev") or registry == "gcr.io"
                                 or registry.endswith(".gcr.io")):
        services.add(ARTIFACT_REGISTRY)  # gcr.io is served by Artifact Registry
    return sorted(services)


def _zone_name(url):
    return str(url).rstrip("/").rsplit("/", 1)[-1]


def _reason(response):
    try:
        error = response.json().get("error", {})
    except ValueError:
        return ""
    details = error.get("errors") or [{}]
    return error.get("status") or details[0].get("reason", "")


def _message(response):
    try:
        return response.json().get("error", {}).get("message", "") or response.text[:300]
    except ValueError:
        return (response.text or "")[:300]


class LiveChecks:
    """The live checks of one deployment; run() returns (problems, warnings, report)."""

    def __init__(self, session, settings, roles, target, *, compute_endpoint=None, serviceusage_endpoint=None,
                 storage_endpoint=None, container_endpoint=None, skip=()):
        self.session = session
        self.settings = settings
        self.roles = tuple(roles)
        self.target = target
        self.compute = (compute_endpoint or COMPUTE_ENDPOINT).rstrip("/") + "/compute/v1"
        self.serviceusage = (serviceusage_endpoint or SERVICEUSAGE_ENDPOINT).rstrip("/") + "/v1"
        storage = (storage_endpoint or STORAGE_ENDPOINT).rstrip("/")
        self.storage = (storage if "://" in storage else "http://" + storage) + "/storage/v1"
        self.container = (container_endpoint or CONTAINER_ENDPOINT).rstrip("/") + "/v1"
        self.skip = set(skip)
        self.project = settings.get("gcp_project")
        self.problems, self.warnings, self.report = [], [], {}

    def _problem(self, variable, message, rule):
        self.problems.append((variable, message, rule))

    def _usable(self, *names):
        return all(self.settings.get(n) is not None and n not in self.skip for n in names)

    def run(self):
        if not self.project or "gcp_project" in self.skip:
            return self.problems, self.warnings, self.report
        try:
            disabled = self.check_services()
        except GcpError as exc:  # unreachable or refusing: the other questions would fare no better
            self.warnings.append(f"live checks skipped: {exc}")
            return self.problems, self.warnings, self.report
        if "gke_cluster" in self.roles and self.target == "gke" and "compute.googleapis.com" not in disabled:
            if self._usable("gke_cluster_gpu_accelerator_type", "gke_cluster_gpu_accelerator_count",
                            "gke_cluster_location") and "gke_cluster_node_locations" not in self.skip:
                try:
                    zones = self.check_accelerator_zones()
                    if zones is not None:
                        self.check_quota(zones)
                except GcpError as exc:
                    self.warnings.append(f"GPU zones and quota unchecked: {exc}")
        if "gcs_models" in self.roles and "storage.googleapis.com" not in disabled and self._usable("gcs_models_bucket"):
            try:
                self.check_bucket()
            except GcpError as exc:
                self.warnings.append(f"bucket owner unchecked: {exc}")
        return self.problems, self.warnings, self.report

    # -- Service Usage ---------------------------------------------------------------------
    def check_services(self):
        """Names of required services that are disabled (reported as one problem on gcp_project)."""
        wanted = required_services(self.roles, self.settings)
        if not wanted:
            return set()
        enabled, token = set(), None
        url = f"{self.serviceusage}/projects/{quote(self.project, safe='')}/services"
        while True:
            params = {"filter": "state:ENABLED", "pageSize": 200}
            if token:
                params["pageToken"] = token
            response = self.session.request("GET", url, params=params, allow=(403, 404),
                                            context="serviceusage services.list")
            if response.status_code != 200:
                self.warnings.append(
                    f"could not list the enabled APIs of {self.project} ({response.status_code} {_reason(response)}: "
                    f"{_message(response)}) — grant roles/serviceusage.serviceUsageViewer to check them, or set "
                    "preflight_live_checks: false")
                return set()
            body = response.json() or {}
            for service in body.get("services") or []:
                enabled.add(_zone_name(service.get("name", "")))
            token = body.get("nextPageToken")
            if not token:
                break
        disabled = {s for s in wanted if s not in enabled}
        self.report["services"] = {s: s in enabled for s in wanted}
        if disabled:
            names = " ".join(sorted(disabled))
            self._problem("gcp_project", f"{self.project!r} does not have these APIs enabled, which the run calls: "
                                         f"{', '.join(sorted(disabled))} — enable them (gcloud services enable {names} "
                                         f"--project {self.project})", "live-services")
        return disabled

    # -- Compute: accelerator types per zone ------------------------------------------------
    def _region_zones(self, region):
        url = f"{self.compute}/projects/{quote(self.project, safe='')}/regions/{quote(region, safe='')}"
        response = self.session.request("GET", url, allow=(400, 403, 404), context=f"compute regions.get {region}")
        if response.status_code in (400, 404):
            self._problem("gke_cluster_location", f"region {region!r} does not exist in Compute Engine "
                                                  f"({_message(response)}) — use a region like 'us-central1'",
                          "live-accelerator-zones")
            return None, None
        if response.status_code == 403:
            self.warnings.append(f"could not read region {region} ({_reason(response)}: {_message(response)}) — "
                                 "GPU zones and quota unchecked; grant roles/compute.viewer or set "
                                 "preflight_live_checks: false")
            return None, None
        body = response.json() or {}
        return sorted(_zone_name(z) for z in body.get("zones") or []), body.get("quotas") or []

    def _accelerators(self, zone):
        """{accelerator type: maximumCardsPerInstance} of a zone; None when the zone does not exist."""
        found, token = {}, None
        url = f"{self.compute}/projects/{quote(self.project, safe='')}/zones/{quote(zone, safe='')}/acceleratorTypes"
        while True:
            params = {"pageToken": token} if token else {}
            response = self.session.request("GET", url, params=params, allow=(400, 403, 404),
                                            context=f"compute acceleratorTypes.list {zone}")
            # Compute answers an unknown zone with 400 "Unknown zone" or 404 "was not found"
            # (GoogleCloudPlatform/k8s-cloud-provider#221: both happen).
            if response.status_code in (400, 404):
                return None
            if response.status_code == 403:
                raise PermissionError(f"{_reason(response)}: {_message(response)}")
            body = response.json() or {}
            for item in body.get("items") or []:
                found[item.get("name")] = int(item.get("maximumCardsPerInstance") or 0)
            token = body.get("nextPageToken")
            if not token:
                return found

    def check_accelerator_zones(self):
        """Checks the pool's zones; returns the zone names (for the quota), or None when unchecked."""
        gpu = self.settings["gke_cluster_gpu_accelerator_type"]
        count = self.settings["gke_cluster_gpu_accelerator_count"]
        location = self.settings["gke_cluster_location"]
        region = location[:-2] if ZONE_RE.match(location) else location
        given = list(self.settings.get("gke_cluster_node_locations") or [])
        zones = given or ([location] if ZONE_RE.match(location) else None)
        region_zones, quotas = self._region_zones(region)
        self.report["quotas"] = quotas
        if region_zones is None and zones is None:
            return None
        variable = "gke_cluster_node_locations" if given else "gke_cluster_location"
        asked = zones or region_zones
        offered, missing, maximum = [], [], None
        try:
            for zone in asked:
                types = self._accelerators(zone)
                if types is None:
                    self._problem(variable, f"zone {zone!r} does not exist in Compute Engine — use a zone of "
                                            f"{region} ({', '.join(region_zones or []) or 'see gcloud compute zones list'})",
                                  "live-accelerator-zones")
                    continue
                if gpu in types:
                    offered.append(zone)
                    maximum = types[gpu] if maximum is None else min(maximum, types[gpu])
                else:
                    missing.append(zone)
        except PermissionError as exc:
            self.warnings.append(f"could not list the accelerator types of {region}'s zones ({exc}) — GPU zones "
                                 "unchecked; grant roles/compute.viewer or set preflight_live_checks: false")
            return None
        self.report["accelerator_zones"] = {"offered": offered, "missing": missing}
        if missing and zones:
            self._problem(variable, f"{gpu} is not offered in {', '.join(missing)} (offered in "
                                    f"{', '.join(offered) or 'none of the listed zones'}) — put the GPU pool in zones that offer it",
                          "live-accelerator-zones")
        elif missing:
            # A regional cluster without node locations puts the pool in three zones GKE picks; GKE refuses
            # the pool when one of them lacks the GPU type (GKE docs, "Regional clusters").
            self._problem("gke_cluster_node_locations",
                          f"is empty, so GKE spreads the GPU pool over {REGIONAL_DEFAULT_ZONES} zones of {region}, but "
                          f"{gpu} is not offered in {', '.join(missing)} — list zones that offer it "
                          f"({', '.join(offered) or 'none in this region'})", "live-accelerator-zones")
        if maximum is not None and count > maximum:
            self._problem("gke_cluster_gpu_accelerator_count",
                          f"{count} x {gpu} exceeds its maximumCardsPerInstance ({maximum}) — use at most {maximum}",
                          "live-accelerator-zones")
        return zones or (region_zones[:REGIONAL_DEFAULT_ZONES] if not missing else None)

    # -- Compute: regional GPU quota ---------------------------------------------------------
    def check_quota(self, zones):
        gpu = self.settings["gke_cluster_gpu_accelerator_type"]
        metric = QUOTA_METRICS.get(gpu)
        if metric is None or self.settings.get("gke_cluster_gpu_spot"):
            self.warnings.append(f"GPU quota unchecked for {'Spot ' if self.settings.get('gke_cluster_gpu_spot') else ''}"
                                 f"{gpu}: no regional quota metric of compute.v1 applies")
            return
        per_node = self.settings["gke_cluster_gpu_accelerator_count"]
        nodes = max(self.settings.get("gke_cluster_gpu_initial_node_count") or 0,
                    self.settings.get("gke_cluster_gpu_min_nodes") or 0)
        needed = nodes * len(zones) * per_node
        quota = next((q for q in self.report.get("quotas") or [] if q.get("metric") == metric), None)
        location = self.settings["gke_cluster_location"]
        region = location[:-2] if ZONE_RE.match(location) else location
        if quota is None:
            self.warnings.append(f"region {region} reports no {metric} quota; GPU quota unchecked")
            return
        limit, usage = float(quota.get("limit") or 0), float(quota.get("usage") or 0)
        self.report["quota"] = {"metric": metric, "limit": limit, "usage": usage, "needed": needed}
        fix = (f"request {metric} quota of at least {needed} in {region} (IAM & Admin > Quotas), or lower "
               "gke_cluster_gpu_min_nodes / gke_cluster_gpu_initial_node_count")
        what = f"{nodes} node(s) x {len(zones)} zone(s) x {per_node} GPU(s) = {needed} {metric}"
        if limit < needed:
            self._problem("gke_cluster_gpu_min_nodes", f"the pool's first nodes need {what}, but the quota in {region} "
                                                       f"is {limit:g} — {fix}", "live-gpu-quota")
        elif limit - usage < needed and not self._pool_exists():
            self._problem("gke_cluster_gpu_min_nodes", f"the pool's first nodes need {what}, but only "
                                                       f"{limit - usage:g} of {limit:g} are free in {region} "
                                                       f"({usage:g} in use) — free some, or {fix}", "live-gpu-quota")

    def _pool_exists(self):
        """True when the GPU pool exists already (its nodes are in the quota's usage)."""
        cluster, pool = self.settings.get("gke_cluster_name"), self.settings.get("gke_cluster_gpu_pool_name")
        if not cluster or not pool:
            return False
        url = (f"{self.container}/projects/{quote(self.project, safe='')}/locations/"
               f"{quote(self.settings['gke_cluster_location'], safe='')}/clusters/{quote(cluster, safe='')}"
               f"/nodePools/{quote(pool, safe='')}")
        try:
            response = self.session.request("GET", url, allow=(403, 404), context="GKE nodePools.get")
        except GcpError:
            return False
        return response.status_code == 200

    # -- Cloud Storage: whose bucket -----------------------------------------------------------
    def check_bucket(self):
        bucket = self.settings["gcs_models_bucket"]
        url = f"{self.storage}/b/{quote(bucket, safe='')}"
        response = self.session.request("GET", url, params={"fields": "name"}, allow=(403, 404),
                                        context=f"bucket {bucket!r}")
        self.report["bucket"] = {200: "exists", 404: "absent (gcs_models creates it)", 403: "forbidden"}[
            response.status_code]
        if response.status_code == 403:
            self._problem("gcs_models_bucket",
                          f"{bucket!r} exists and this identity may not read it (403: {_message(response)}) — bucket "
                          "names are global, so it most likely belongs to another project: pick another name (e.g. "
                          f"'{self.project}-triton-models'), or grant this identity roles/storage.admin on it",
                          "live-bucket-owner")
