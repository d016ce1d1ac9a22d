"""A Compute Engine + Service Usage simulator: the read-only questions the preflight asks, in memory.

Two HTTP servers, one per API (``sim.urls["compute"]``, ``["serviceusage"]``), so a client that sends a
call to the wrong endpoint gets 404. Every path and query parameter is matched against the API's
discovery document (compute.v1 and serviceusage.v1, shipped in google-api-python-client, as container.v1
is for the GKE simulator): an unknown parameter is refused with 400 as Google does. Modelled behaviour and
where it comes from:

- ``compute.acceleratorTypes.list`` answers the accelerator types of a zone as ``AcceleratorTypeList``
  (``items`` of ``AcceleratorType``: name, zone URL, maximumCardsPerInstance; paged by ``maxResults``,
  default 500, and ``nextPageToken``; compute.v1 discovery document).
- ``compute.regions.get`` answers a ``Region`` with its ``zones`` (URLs) and ``quotas`` (``metric``,
  ``limit``, ``usage``; metric names from the Quota.metric enum of compute.v1, e.g. NVIDIA_T4_GPUS).
- An unknown zone is 400 "Invalid value for field 'zone': 'Z'. Unknown zone." (reason invalid;
  inspec/inspec-gcp#301; GoogleCloudPlatform/k8s-cloud-provider#221: Compute answers 400 where it used to
  answer 404), an unknown region 404 "The resource 'projects/P/regions/R' was not found" (notFound), an
  unknown project 404 "The resource 'projects/P' was not found" (hashicorp/terraform#4031). Compute errors
  carry ``errors: [{message, domain: global, reason}]``.
- A project whose Compute Engine API is disabled answers 403 accessNotConfigured (midl-dev/tezos-on-gke#7).
- ``serviceusage.services.list`` (``v1/projects/P/services``) answers ``services`` named
  ``projects/NUMBER/services/NAME`` with ``state`` (GoogleApiServiceusageV1Service), filtered by
  ``state:ENABLED`` / ``state:DISABLED`` (the only filters the method allows), paged by ``pageSize``
  (default 50, at most 200) and ``nextPageToken`` (serviceusage.v1 discovery document); terraform-provider-google
  reads enabled services exactly this way (ListCurrentlyEnabledServices). Project IDs or numbers are accepted.
  An identity without serviceusage.services.list (``sim.deny_listing(project)``), and an unknown project,
  get 403 PERMISSION_DENIED "Permission denied to list services for consumer container [projects/P]"
  (aquasecurity/cloudsploit#1606).
- Only GETs exist here: any other verb is recorded as a write and refused (a preflight must not write).
- Every request needs ``Authorization: Bearer`` (401 otherwise); faults can be queued:

    sim.inject("status", 503, count=2, match="acceleratorTypes")   # transient (the session retries)
    sim.inject("status", 403, reason="forbidden", match="regions.get", message="Required 'compute.regions.get'")

The offered zones and quotas are test data set by the tests (``offer``, ``quota``, ``enable``).

Run standalone (prints its URLs): python local_stack/simulators/compute.py
"""

from __future__ import annotations

import itertools
import json
import threading
from urllib.parse import parse_qs, unquote

try:
    from .discovery import Discovery
    from .google_http import ApiError, JsonHandler, MultiApiSimulator
except ImportError:  # run as a script
    from discovery import Discovery  # type: ignore[no-redef]
    from google_http import ApiError, JsonHandler, MultiApiSimulator  # type: ignore[no-redef]

APIS = {"compute": "compute.v1", "serviceusage": "serviceusage.v1"}
COMPUTE_ROOT = "https://www.googleapis.com/compute/v1"
COMPUTE_REASONS = {400: "invalid", 401: "required", 403: "forbidden", 404: "notFound", 429: "rateLimitExceeded",
                   500: "backendError", 503: "backendError"}


class ComputeSimulator(MultiApiSimulator):
    def __init__(self):
        self._init_apis({api: Discovery(doc) for api, doc in APIS.items()})
        self.projects = {}       # project id -> project number
        self.zones = {}          # zone -> {accelerator type: maximumCardsPerInstance}
        self.quotas = {}         # (project, region) -> {metric: [limit, usage]}
        self.services = {}       # project id -> set of enabled service names
        self.listing_denied = set()  # projects whose services the caller may not list
        self._numbers = itertools.count(402_118_664_201)

    # ----------------------------------------------------------------- test API
    def project(self, project, enabled=()):
        with self.lock:
            self.projects.setdefault(project, str(next(self._numbers)))
            self.services.setdefault(project, set()).update(enabled)
        return self

    def enable(self, project, *services):
        return self.project(project, services)

    def disable(self, project, *services):
        with self.lock:
            self.services.setdefault(project, set()).difference_update(services)
        return self

    def deny_listing(self, project):
        with self.lock:
            self.listing_denied.add(project)
        return self

    def offer(self, zone, accelerator, max_cards=4):
        with self.lock:
            self.zones.setdefault(zone, {})[accelerator] = max_cards
        return self

    def add_zone(self, zone):
        with self.lock:
            self.zones.setdefault(zone, {})
        return self

    def quota(self, project, region, metric, limit, usage=0.0):
        with self.lock:
            self.quotas.setdefault((project, region), {})[metric] = [float(limit), float(usage)]
        return self

    def inject(self, kind, status=None, *, count=1, match="", reason=None, message=None):
        with self.lock:
            self.faults.append({"kind": kind, "status": status, "count": count, "match": match, "reason": reason,
                                "message": message})

    def calls(self, method_suffix=None):
        with self.lock:
            return [r for r in self.requests if method_suffix is None or (r[3] or "").endswith(method_suffix)]

    def write_calls(self):
        with self.lock:
            return [r for r in self.requests if r[1] not in ("GET", "HEAD")]

    def _handler(self):
        return _Handler

    # ----------------------------------------------------------------- helpers
    def _project(self, ref):
        for project, number in self.projects.items():
            if ref in (project, number):
                return project
        return None

    def _compute_project(self, ref):
        project = self._project(ref)
        if project is None:
            raise ApiError(404, f"The resource 'projects/{ref}' was not found", reason="notFound")
        if "compute.googleapis.com" not in self.services.get(project, set()):
            raise ApiError(403, f"Compute Engine API has not been used in project {self.projects[project]} before or "
                                "it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
                                f"compute.googleapis.com/overview?project={self.projects[project]} then retry.",
                           reason="accessNotConfigured")
        return project

    @staticmethod
    def _page(items, query, size_name, default, maximum):
        try:
            size = int(query.get(size_name, default))
            start = int(query.get("pageToken") or 0)
        except ValueError as exc:
            raise ApiError(400, f"Invalid value for {size_name} or pageToken: {exc}") from exc
        if size < 0 or size > maximum:
            raise ApiError(400, f"Invalid value for field '{size_name}': '{size}'. Must be between 0 and {maximum}.")
        size = size or default
        page = items[start:start + size]
        token = str(start + size) if start + size < len(items) else None
        return page, token

    # ----------------------------------------------------------------- dispatch
    def handle(self, api, verb, path, query):
        with self.lock:
            prefix = self.prefix[api]
            if prefix and not path.startswith(prefix + "/"):
                raise ApiError(404, f"Not Found: {path}")
            found = self.discovery[api].match(verb, path[len(prefix):])
            if found is None:
                raise ApiError(404, f"Method not found: {verb} {path}")
            method_id, params, _schema = found
            unknown = [name for name in query if name not in self.parameters[api].get(method_id, ())]
            if unknown:
                raise ApiError(400, " ".join(f'Invalid JSON payload received. Unknown name "{name}": Cannot bind '
                                             "query parameter." for name in unknown))
            if verb != "GET":
                raise ApiError(501, f"{method_id} is not simulated: the preflight only reads", "UNIMPLEMENTED")
            handler = getattr(self, "m_" + method_id.replace(".", "_"), None)
            if handler is None:
                raise ApiError(501, f"{method_id} is not simulated", "UNIMPLEMENTED")
            return method_id, handler(*[unquote(p) for p in params], query={k: v[-1] for k, v in query.items()})

    # Compute Engine v1 ---------------------------------------------------------------------------
    def m_compute_acceleratorTypes_list(self, project, zone, query):
        project = self._compute_project(project)
        if zone not in self.zones:
            raise ApiError(400, f"Invalid value for field 'zone': '{zone}'. Unknown zone.", reason="invalid")
        items = [{"kind": "compute#acceleratorType", "name": name, "description": name.replace("-", " "),
                  "zone": f"{COMPUTE_ROOT}/projects/{project}/zones/{zone}", "maximumCardsPerInstance": cards,
                  "selfLink": f"{COMPUTE_ROOT}/projects/{project}/zones/{zone}/acceleratorTypes/{name}",
                  "id": str(abs(hash((zone, name))) % 10 ** 12)}
                 for name, cards in sorted(self.zones[zone].items())]
        page, token = self._page(items, query, "maxResults", 500, 500)
        body = {"kind": "compute#acceleratorTypeList", "items": page,
                "selfLink": f"{COMPUTE_ROOT}/projects/{project}/zones/{zone}/acceleratorTypes"}
        if token:
            body["nextPageToken"] = token
        return 200, body

    def m_compute_regions_get(self, project, region, query):
        project = self._compute_project(project)
        zones = sorted(z for z in self.zones if z.rsplit("-", 1)[0] == region)
        if not zones:
            raise ApiError(404, f"The resource 'projects/{project}/regions/{region}' was not found", reason="notFound")
        quotas = [{"metric": metric, "limit": limit, "usage": usage}
                  for metric, (limit, usage) in sorted(self.quotas.get((project, region), {}).items())]
        return 200, {"kind": "compute#region", "name": region, "status": "UP", "quotas": quotas,
                     "zones": [f"{COMPUTE_ROOT}/projects/{project}/zones/{z}" for z in zones],
                     "selfLink": f"{COMPUTE_ROOT}/projects/{project}/regions/{region}"}

    # Service Usage v1 ----------------------------------------------------------------------------
    def m_serviceusage_services_list(self, collection, ref, query):
        if collection != "projects":
            raise ApiError(400, "The BatchGetServices and ListServices methods currently only support projects.")
        project = self._project(ref)
        if project is None or project in self.listing_denied:
            raise ApiError(403, f"Permission denied to list services for consumer container [projects/{ref}]",
                           "PERMISSION_DENIED")
        wanted = query.get("filter")
        if wanted not in (None, "", "state:ENABLED", "state:DISABLED"):
            raise ApiError(400, f"Invalid filter {wanted!r}: the allowed filter strings are state:ENABLED and "
                                "state:DISABLED")
        number = self.projects[project]
        enabled = self.services.get(project, set())
        known = sorted(enabled | {"compute.googleapis.com", "container.googleapis.com", "storage.googleapis.com"})
        services = [{"name": f"projects/{number}/services/{name}", "parent": f"projects/{number}",
                     "config": {"name": name, "title": name.split(".")[0]},
                     "state": "ENABLED" if name in self.services.get(project, set()) else "DISABLED"}
                    for name in known]
        if wanted:
            services = [s for s in services if s["state"] == wanted.split(":", 1)[1]]
        page, token = self._page(services, query, "pageSize", 50, 200)
        body = {"services": page}
        if token:
            body["nextPageToken"] = token
        return 200, body


class _Handler(JsonHandler):
    sim: ComputeSimulator = None
    api = "compute"
    error_shapes = {"compute": "reason", "serviceusage": "status"}
    reasons_by_code = COMPUTE_REASONS

    def _answer(self, verb, path, query, body):
        return self.sim.handle(self.api, verb, path, parse_qs(query, keep_blank_values=True))


def main():
    sim = ComputeSimulator().serve()
    sim.project("sim-project", ["compute.googleapis.com", "container.googleapis.com"])
    sim.offer("us-central1-a", "nvidia-tesla-t4")
    print(json.dumps(sim.urls), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
