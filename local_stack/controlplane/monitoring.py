"""Cloud Monitoring, the part the metrics adapter reads: projects.timeSeries.create and .list (API v3).

On GKE, Managed Service for Prometheus writes the series that the PodMonitoring scrapes and the Rules
object records into Cloud Monitoring as ``prometheus.googleapis.com/NAME/KIND``, and
custom-metrics-stackdriver-adapter reads them back with ``projects.timeSeries.list``. Locally, tests and
the rehearsal write points with ``timeSeries.create`` (what GMP's collectors do) and the local metrics
adapter lists them. Shapes follow the Monitoring API v3 reference: a TimeSeries has ``metric`` {type,
labels}, ``resource`` {type, labels} and ``points`` [{interval {endTime}, value {doubleValue|int64Value}}];
``list`` takes ``filter`` (``metric.type = "..."``) and ``interval.startTime``/``interval.endTime`` and
returns points newest first, only those inside the interval; ``create`` answers ``{}``.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

from local_stack.simulators.google_http import send_json, serve_http, stop_http

TYPE_FILTER = re.compile(r'metric\.type\s*=\s*"([^"]+)"')


def _parse_time(value):
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Monitoring:
    def __init__(self):
        self.lock = threading.Lock()
        self.series = {}   # (project, metric type, labels json) -> {"metric", "resource", "points"}
        self.requests = []
        self.server = None
        self.url = None

    def write(self, project, metric_type, value, labels=None, resource_labels=None):
        """Append one point now (what a test or the rehearsal does to drive the HPA).

        GMP writes Prometheus series on the ``prometheus_target`` monitored resource, labelled project_id,
        location, cluster, namespace, job and instance (GMP docs, "Managed Service for Prometheus data model").
        """
        self.create(project, {"timeSeries": [{
            "metric": {"type": metric_type, "labels": labels or {}},
            "resource": {"type": "prometheus_target", "labels": {"project_id": project, **(resource_labels or {})}},
            "points": [{"interval": {"endTime": now_rfc3339()}, "value": {"doubleValue": float(value)}}],
        }]})

    def create(self, project, body):
        with self.lock:
            for series in body.get("timeSeries", []):
                key = (project, series["metric"]["type"],
                       json.dumps([series["metric"].get("labels", {}), series.get("resource", {})], sort_keys=True))
                entry = self.series.setdefault(key, {"metric": series["metric"], "resource": series.get("resource", {}),
                                                     "points": []})
                entry["points"] = list(series.get("points", [])) + entry["points"]
        return {}

    def list(self, project, query):
        found = TYPE_FILTER.search(query.get("filter", ""))
        if not found:
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                   "message": "Field filter had an invalid value: a metric.type is required"}}
        start = _parse_time(query["interval.startTime"]) if "interval.startTime" in query else None
        end = _parse_time(query["interval.endTime"]) if "interval.endTime" in query else None
        out = []
        with self.lock:
            for (proj, metric_type, _labels), entry in self.series.items():
                if proj != project or metric_type != found.group(1):
                    continue
                points = [p for p in entry["points"]
                          if (start is None or _parse_time(p["interval"]["endTime"]) >= start)
                          and (end is None or _parse_time(p["interval"]["endTime"]) <= end)]
                if points:
                    out.append({"metric": entry["metric"], "resource": entry["resource"], "points": points})
        return 200, ({"timeSeries": out} if out else {})

    def serve(self):
        self.server, self.url = serve_http(type("Handler", (_Handler,), {"monitoring": self}))
        return self

    def close(self):
        stop_http(self.server)


PATH = re.compile(r"^/v3/projects/([^/]+)/timeSeries$")


class _Handler(BaseHTTPRequestHandler):
    monitoring: Monitoring = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        return

    def _reply(self, status, body):
        send_json(self, status, body)

    def do_GET(self):  # noqa: N802
        parts = urllib.parse.urlsplit(self.path)
        match = PATH.match(parts.path)
        if not match:
            self._reply(404, {"error": {"code": 404, "message": "not found"}})
            return
        with self.monitoring.lock:
            self.monitoring.requests.append(("GET", parts.path))
        self._reply(*self.monitoring.list(urllib.parse.unquote(match.group(1)), dict(urllib.parse.parse_qsl(parts.query))))

    def do_POST(self):  # noqa: N802
        parts = urllib.parse.urlsplit(self.path)
        match = PATH.match(parts.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not match:
            self._reply(404, {"error": {"code": 404, "message": "not found"}})
            return
        self._reply(200, self.monitoring.create(urllib.parse.unquote(match.group(1)), body))
