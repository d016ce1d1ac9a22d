# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Prove a Triton server answers correctly: readiness, metadata, reference inference, load, metrics."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import threading
import time
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError

try:
    import numpy as np
    HAS_NUMPY = True
except ImportError:  # pragma: no cover
    HAS_NUMPY = False

try:
    import tritonclient.http as triton_http
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException
    HAS_TRITONCLIENT = True
    TRITONCLIENT_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover
    HAS_TRITONCLIENT = False
    TRITONCLIENT_IMPORT_ERROR = exc

    class InferenceServerException(Exception):  # type: ignore[no-redef]
        pass


class VerifyError(TritonFilError):
    """A verification failure; the message says what differed and where."""


def strip_scheme(url):
    return re.sub(r"^[a-z]+://", "", url or "").rstrip("/")


class NotTritonError(VerifyError):
    """The endpoint answers, but not as a Triton server does: waiting longer will not help."""


def make_client(protocol, url, timeout=30.0):
    """A tritonclient client whose every call is bounded by timeout seconds.

    HTTP: the geventhttpclient connection and network timeouts. gRPC has no client-wide timeout;
    TritonServer passes client_timeout on every call instead.
    """
    if protocol == "grpc":
        return triton_grpc.InferenceServerClient(url=strip_scheme(url))
    return triton_http.InferenceServerClient(url=strip_scheme(url), connection_timeout=timeout,
                                             network_timeout=timeout)


class TritonServer:
    """One Triton endpoint; every call ends within its timeout and fails as a VerifyError naming the URL.

    A 200 answer that is not Triton's JSON (an HTML page, a proxy's login form) or an HTTP/1 server on
    a gRPC URL raises NotTritonError at once; timeouts and refused connections raise VerifyError.
    """

    def __init__(self, protocol, url, timeout):
        self.protocol, self.url, self.timeout = protocol, url, float(timeout)
        self.client = make_client(protocol, url, self.timeout)

    def close(self):
        try:
            self.client.close()
        except Exception:  # pylint: disable=broad-except  # closing must never mask the real outcome
            pass

    def not_triton(self, detail):
        port = "the gRPC port (8001)" if self.protocol == "grpc" else "the HTTP port (8000)"
        return NotTritonError(f"not a Triton server at {self.url}: {detail} — check url (scheme, host and {port}) "
                              "and protocol")

    def call(self, name, *args, timeout=None, **kwargs):
        """client.<name>(*args) within timeout seconds (default: the server's)."""
        timeout = self.timeout if timeout is None else max(0.1, min(float(timeout), self.timeout))
        client, own = self.client, False
        if self.protocol == "grpc":
            kwargs["client_timeout"] = timeout
        elif timeout < self.timeout:  # a shorter deadline: a client of its own for this call
            client, own = make_client(self.protocol, self.url, timeout), True
        try:
            return getattr(client, name)(*args, **kwargs)
        except InferenceServerException as exc:
            text = str(exc)
            if "Failed parsing HTTP/2" in text or "http1.x" in text.lower():
                raise self.not_triton("it answers HTTP/1, not gRPC") from exc
            if "DEADLINE_EXCEEDED" in text:
                raise VerifyError(f"{self.url} did not answer {name} within {timeout:g}s (the timeout)") from exc
            raise
        except ValueError as exc:  # a 200 answer whose body is not JSON
            raise self.not_triton(f"{name} was answered with something that is not Triton's JSON ({exc})") from exc
        except (OSError, ConnectionError) as exc:  # TimeoutError, refused, reset
            if isinstance(exc, TimeoutError) or "timed out" in str(exc):
                raise VerifyError(f"{self.url} did not answer {name} within {timeout:g}s (the timeout)") from exc
            raise VerifyError(f"{self.url} cannot be reached: {exc} — is the server running and the URL right?") \
                from exc
        finally:
            if own:
                try:
                    client.close()
                except Exception:  # pylint: disable=broad-except
                    pass

    def server_metadata(self, timeout=None):
        meta = self.call("get_server_metadata", timeout=timeout)
        if not isinstance(meta, dict):
            from google.protobuf.json_format import MessageToDict
            meta = MessageToDict(meta, preserving_proto_field_name=True)
        if not isinstance(meta, dict) or not meta.get("version"):
            raise self.not_triton(f"its server metadata has no version ({str(meta)[:120]!r})")
        return meta

    def repository_index(self, timeout=None):
        """[{name, version, state, reason}] of every model in the server's repository."""
        index = self.call("get_model_repository_index", timeout=timeout)
        if not isinstance(index, list):
            from google.protobuf.json_format import MessageToDict
            index = MessageToDict(index, preserving_proto_field_name=True).get("models", [])
        return [m for m in index if isinstance(m, dict)]


def wait_ready(server, model, version, deadline_s, sleep=time.sleep, clock=time.monotonic):
    """Wait for live → ready → model ready within deadline_s seconds; return seconds waited.

    Every call is bounded by the time left. A model missing from the server's repository index fails at
    once (no amount of waiting loads it); a non-Triton answer too. Raises VerifyError at the deadline.
    """
    start = clock()
    stage, last_error, identified = "live", None, False
    while True:
        left = max(0.1, deadline_s - (clock() - start))
        try:
            if stage == "live" and server.call("is_server_live", timeout=left):
                stage = "ready"
            if stage != "live" and not identified:
                server.server_metadata(timeout=left)
                identified = True
            if stage == "ready" and server.call("is_server_ready", timeout=left):
                stage = "model"
            if stage == "model":
                if server.call("is_model_ready", model, version or "", timeout=left):
                    return round(clock() - start, 3)
                last_error = _model_state(server, model, left)
        except NotTritonError:
            raise
        except _ModelMissing as exc:
            raise VerifyError(str(exc)) from None
        except Exception as exc:  # pylint: disable=broad-except  # client libraries raise many kinds
            last_error = exc
        if clock() - start >= deadline_s:
            detail = f" (last error: {last_error})" if last_error else ""
            hint = {
                "live": "is the server running and the URL right?",
                "ready": "the server is up but not ready: a model failed to load — read the server log",
                "model": f"model {model!r} is not ready: check its name and the server log",
            }[stage]
            raise VerifyError(f"server not {stage} after {deadline_s}s{detail} — {hint}")
        sleep(min(1.0, max(0.0, deadline_s - (clock() - start))))


class _ModelMissing(TritonFilError):
    pass


def _model_state(server, model, timeout):
    """Why the model is not ready yet (its state and reason in the repository index); _ModelMissing if absent."""
    index = server.repository_index(timeout=timeout)
    # By name only: a model that is not loaded (explicit model control) is listed without a version.
    mine = [m for m in index if m.get("name") == model]
    if not mine:
        names = sorted({str(m.get("name")) for m in index})
        raise _ModelMissing(f"model {model!r} is not in the repository of {server.url} (it has: {', '.join(names) or 'nothing'}) "
                            "— check model, or the repository the server reads")
    states = "; ".join(f"{m.get('name')}/{m.get('version') or '-'} {m.get('state') or 'UNKNOWN'}"
                       f"{': ' + m['reason'] if m.get('reason') else ''}" for m in mine)
    return f"repository index: {states}"


def normalize_metadata(meta):
    """{'inputs': {name: (datatype, shape)}, 'outputs': {...}} from HTTP (dict) or gRPC (message) metadata."""
    if not isinstance(meta, dict):
        from google.protobuf.json_format import MessageToDict
        meta = MessageToDict(meta, preserving_proto_field_name=True)

    def tensors(items):
        return {t["name"]: (t["datatype"], [int(d) for d in t.get("shape", [])]) for t in items or []}

    return {"name": meta.get("name"), "versions": meta.get("versions", []), "platform": meta.get("platform"),
            "inputs": tensors(meta.get("inputs")), "outputs": tensors(meta.get("outputs"))}


DTYPE_FROM_CONFIG = {
    "TYPE_BOOL": "BOOL", "TYPE_UINT8": "UINT8", "TYPE_INT8": "INT8", "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32", "TYPE_INT64": "INT64", "TYPE_FP16": "FP16", "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64", "TYPE_STRING": "BYTES",
}


def compare_metadata(actual, expected):
    """Problems between the server's metadata and what the model config declares.

    expected: {'inputs': [{name, data_type|datatype, dims}], 'outputs': [...], 'max_batch_size': N}.
    With max_batch_size > 0, the server reports a leading -1 batch dimension.
    """
    problems = []
    batch = [-1] if int(expected.get("max_batch_size", 0) or 0) > 0 else []
    for kind in ("inputs", "outputs"):
        want = {}
        for tensor in expected.get(kind, []):
            dtype = tensor.get("datatype") or DTYPE_FROM_CONFIG.get(tensor.get("data_type"), tensor.get("data_type"))
            want[tensor["name"]] = (dtype, batch + [int(d) for d in tensor.get("dims", [])])
        have = actual[kind]
        for name, spec in want.items():
            if name not in have:
                problems.append(f"{kind[:-1]} {name!r} is declared in the config but the server does not expose it")
            elif have[name] != spec:
                problems.append(f"{kind[:-1]} {name!r}: server has {have[name][0]} {have[name][1]}, "
                                f"config declares {spec[0]} {spec[1]}")
        for name in sorted(set(have) - set(want)):
            problems.append(f"{kind[:-1]} {name!r} is served but not declared in the config")
    return problems


def load_reference(path):
    """Reference file: {model?, inputs: {name: {datatype, shape, data}}, outputs: {name: {...}}, atol?, rtol?}."""
    try:
        with open(path, encoding="utf-8") as handle:
            ref = json.load(handle)
    except OSError as exc:
        raise VerifyError(f"reference file {path!r} cannot be read: {exc}") from exc
    except ValueError as exc:
        raise VerifyError(f"reference file {path!r} is not JSON: {exc}") from exc
    for key in ("inputs", "outputs"):
        if not isinstance(ref.get(key), dict) or not ref[key]:
            raise VerifyError(f"reference file {path!r}: '{key}' must map tensor names to "
                              "{datatype, shape, data}")
    return ref


def _np_dtype(datatype):
    return {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT32": np.int32, "INT64": np.int64,
            "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}[datatype]


def to_arrays(tensors):
    arrays = {}
    for name, spec in tensors.items():
        arrays[name] = np.asarray(spec["data"], dtype=_np_dtype(spec["datatype"])).reshape(spec["shape"])
    return arrays


TRITON_DATATYPES = {
    np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64", np.dtype(np.float16): "FP16", np.dtype(np.int8): "INT8",
    np.dtype(np.uint8): "UINT8", np.dtype(np.bool_): "BOOL"} if HAS_NUMPY else {}


def _infer_request(module, inputs, output_names):
    """(InferInputs, InferRequestedOutputs) of one request, for tritonclient's http or grpc module."""
    request_inputs = []
    for name, array in inputs.items():
        tensor = module.InferInput(name, list(array.shape), TRITON_DATATYPES[array.dtype])
        tensor.set_data_from_numpy(array)
        request_inputs.append(tensor)
    return request_inputs, [module.InferRequestedOutput(name) for name in output_names]


def infer(client, protocol, model, version, inputs, output_names, timeout=None):
    """One inference; client is a TritonServer (every call bounded) or a bare tritonclient client."""
    request_inputs, outputs = _infer_request(triton_grpc if protocol == "grpc" else triton_http, inputs,
                                             output_names)
    if isinstance(client, TritonServer):
        result = client.call("infer", model, request_inputs, model_version=version or "", outputs=outputs,
                             timeout=timeout)
    elif protocol == "grpc" and timeout:
        result = client.infer(model, request_inputs, model_version=version or "", outputs=outputs,
                              client_timeout=timeout)
    else:
        result = client.infer(model, request_inputs, model_version=version or "", outputs=outputs)
    return {name: result.as_numpy(name) for name in output_names}


def infer_with_version(client, model, version, inputs, output_names):
    """(outputs, the model version that answered) over HTTP: the rollout counts which version serves.

    client is a TritonServer (every call bounded) or a bare HTTP tritonclient client.
    """
    request_inputs, outputs = _infer_request(triton_http, inputs, output_names)
    if isinstance(client, TritonServer):
        result = client.call("infer", model, request_inputs, model_version=version or "", outputs=outputs)
    else:
        result = client.infer(model, request_inputs, model_version=version or "", outputs=outputs)
    return {name: result.as_numpy(name) for name in output_names}, str(result.get_response().get("model_version", ""))


def compare_outputs(actual, expected, atol, rtol):
    """Return (report, problems) comparing output arrays elementwise with tolerance."""
    report, problems = {}, []
    for name, want in expected.items():
        have = actual.get(name)
        if have is None:
            problems.append(f"output {name!r} missing from the response")
            continue
        if tuple(have.shape) != tuple(want.shape):
            problems.append(f"output {name!r}: shape {list(have.shape)} differs from the reference {list(want.shape)}")
            continue
        diff = np.abs(have.astype(np.float64) - want.astype(np.float64))
        bound = atol + rtol * np.abs(want.astype(np.float64))
        bad = np.argwhere(diff > bound)
        report[name] = {"max_abs_error": float(diff.max()) if diff.size else 0.0,
                        "elements": int(want.size), "mismatched": int(len(bad))}
        if len(bad):
            first = tuple(int(i) for i in bad[0])
            problems.append(
                f"output {name!r}: {len(bad)} of {want.size} values differ beyond atol={atol}, rtol={rtol}; "
                f"first at {list(first)}: got {have[first]!r}, expected {want[first]!r}"
            )
    return report, problems


def percentile(sorted_values, pct):
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * pct / 100.0
    low, high = math.floor(k), math.ceil(k)
    if low == high:
        return sorted_values[int(k)]
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (k - low)


def load_summary(latencies, errors, elapsed, inputs, concurrency):
    """The load phase's result fields from its request latencies (seconds) and errors (the python engine's)."""
    latencies = sorted(latencies)
    rows = next(iter(inputs.values())).shape[0] if inputs else 1

    def ms(value):
        return None if value is None else round(value * 1000.0, 3)

    return {
        "engine": "python", "concurrency": concurrency, "duration_s": round(elapsed, 3), "requests": len(latencies),
        "errors": len(errors), "first_error": errors[0] if errors else None,
        "throughput_rps": round(len(latencies) / elapsed, 2) if elapsed > 0 else 0.0,
        "rows_per_s": round(len(latencies) * rows / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": {"p50": ms(percentile(latencies, 50)), "p90": ms(percentile(latencies, 90)),
                       "p99": ms(percentile(latencies, 99)), "max": ms(latencies[-1] if latencies else None)},
    }


def load_phase(make, protocol, model, version, inputs, output_names, concurrency, duration_s,
               clock=time.perf_counter, timeout=None):
    """N workers, each with its own client, send the reference request until the duration ends.

    make() returns a client whose calls end within timeout (make_client(..., timeout)); gRPC calls get
    timeout as their client_timeout.
    """
    latencies, errors, lock = [], [], threading.Lock()
    stop_at = clock() + duration_s

    def worker():
        client = make()
        mine, my_errors = [], []
        try:
            while clock() < stop_at:
                t0 = clock()
                try:
                    infer(client, protocol, model, version, inputs, output_names, timeout=timeout)
                    mine.append(clock() - t0)
                except Exception as exc:  # pylint: disable=broad-except
                    my_errors.append(str(exc))
        finally:
            with lock:
                latencies.extend(mine)
                errors.extend(my_errors)
            try:
                client.close()
            except Exception:  # pylint: disable=broad-except
                pass

    started = clock()
    threads = [threading.Thread(target=worker, daemon=True) for dummy in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + (timeout or 60) + 5)
    elapsed = clock() - started
    return load_summary(latencies, errors, elapsed, inputs, concurrency)


METRIC_LINE = re.compile(r'^(nv_inference_[a-z_]+)\{([^}]*)\}\s+([0-9.eE+-]+)$')


def scrape_metrics(url, model=None, timeout=10.0):
    """The server's nv_inference_* counters (summed over versions) from its Prometheus endpoint."""
    try:
        with open_url(url, timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, UrlsConnectionError, OSError, http.client.HTTPException, ValueError) as exc:
        raise VerifyError(f"metrics_url {url!r} cannot be read: {exc} — check the metrics port (8002)") from exc
    metrics = {}
    for line in text.splitlines():
        match = METRIC_LINE.match(line.strip())
        if not match:
            continue
        name, labels, value = match.groups()
        if model and f'model="{model}"' not in labels:
            continue
        metrics[name] = metrics.get(name, 0.0) + float(value)
    return metrics


def find_perf_analyzer(path=None):
    """The perf_analyzer binary: the given path, else perf_analyzer on PATH; None when there is none."""
    import shutil  # pylint: disable=import-outside-toplevel
    if path:
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which("perf_analyzer")


def perf_analyzer_input_file(inputs, path):
    """perf_analyzer's real-input JSON for the reference rows: one data step per row (batch dimension dropped)."""
    rows = next(iter(inputs.values())).shape[0]
    steps = []
    for row in range(rows):
        steps.append({name: {"content": array[row].reshape(-1).tolist(), "shape": list(array.shape[1:])}
                      for name, array in inputs.items()})
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"data": steps}, handle)
    return rows


def parse_perf_analyzer_csv(text, rows, duration_s):
    """The same fields load_phase returns, from perf_analyzer's -f CSV (latencies in microseconds)."""
    import csv  # pylint: disable=import-outside-toplevel
    records = list(csv.DictReader(text.splitlines()))
    if not records:
        raise VerifyError(f"perf_analyzer wrote no measurement: {text[:300]!r}")
    row = records[-1]

    def ms(key):
        value = row.get(key)
        return round(float(value) / 1000.0, 3) if value not in (None, "") else None

    inferences = float(row["Inferences/Second"])
    throughput = inferences / max(rows, 1)
    return {
        "engine": "perf_analyzer", "concurrency": int(row["Concurrency"]), "duration_s": round(duration_s, 3),
        "requests": int(round(throughput * duration_s)), "errors": 0, "first_error": None,
        "throughput_rps": round(throughput, 2), "rows_per_s": round(inferences, 2),
        "latency_ms": {"p50": ms("p50 latency"), "p90": ms("p90 latency"), "p99": ms("p99 latency"),
                       "max": None, "avg": ms("Avg latency")},
    }


def perf_analyzer_load(binary, protocol, url, model, version, inputs, concurrency, duration_s, workdir,
                       run=None, timeout=30.0):
    """The load phase run by perf_analyzer: the reference rows as one request of that batch size, at the
    given concurrency, measured over three windows that together last duration_s (no stability wait).

    perf_analyzer has no per-request timeout, so its whole run is bounded instead: twice the measured
    time (warm-up and the last requests) plus timeout plus 30 s for its start; then it is killed.
    """
    import subprocess  # pylint: disable=import-outside-toplevel
    run = run or subprocess.run
    data_file, report = os.path.join(workdir, "perf_input.json"), os.path.join(workdir, "perf_report.csv")
    rows = perf_analyzer_input_file(inputs, data_file)
    window_ms = max(int(duration_s * 1000 / 3), 100)
    cmd = [binary, "-m", model, "-u", strip_scheme(url), "-i", "grpc" if protocol == "grpc" else "http",
           "-b", str(rows), "--input-data", data_file, "--concurrency-range", f"{concurrency}:{concurrency}",
           "--measurement-mode", "time_windows", "--measurement-interval", str(window_ms),
           "--stability-percentage", "999", "--max-trials", "3", "-f", report]
    if version:
        cmd += ["-x", str(version)]
    limit = window_ms * 3 / 1000.0 * 2 + float(timeout) + 30
    try:
        proc = run(cmd, capture_output=True, text=True, check=False, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise VerifyError(f"perf_analyzer did not finish within {limit:g}s (twice load.duration + timeout + 30s) "
                          f"against {url} — the model hangs or the server is overloaded; read the server log") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise VerifyError(f"perf_analyzer failed (exit {proc.returncode}): {' / '.join(tail)}")
    with open(report, encoding="utf-8") as handle:
        return parse_perf_analyzer_csv(handle.read(), rows, window_ms * 3 / 1000.0)


def split_host_port(hostport, default_port=80):
    """('127.0.0.1', 8000) from '127.0.0.1:8000'; IPv6 in brackets; the default port when none is given."""
    if hostport.startswith("["):
        host, _sep, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if hostport.count(":") == 1:
        host, port = hostport.split(":")
        return host, int(port)
    return hostport, default_port


def http_infer_request(url, model, version, inputs, output_names):
    """The bytes of one HTTP/1.1 inference request (KServe v2, binary tensor data), built by tritonclient."""
    request_inputs = []
    for name, array in inputs.items():
        tensor = triton_http.InferInput(name, list(array.shape), {
            np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.int32): "INT32",
            np.dtype(np.int64): "INT64", np.dtype(np.float16): "FP16", np.dtype(np.int8): "INT8",
            np.dtype(np.uint8): "UINT8", np.dtype(np.bool_): "BOOL"}[array.dtype])
        tensor.set_data_from_numpy(array, binary_data=True)
        request_inputs.append(tensor)
    outputs = [triton_http.InferRequestedOutput(name, binary_data=True) for name in output_names]
    body, json_size = triton_http.InferenceServerClient.generate_request_body(request_inputs, outputs=outputs)
    host = strip_scheme(url)
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/octet-stream",
            f"Content-Length: {len(body)}"]
    if json_size is not None:
        head.append(f"Inference-Header-Content-Length: {json_size}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def http_load_phase(url, model, version, inputs, output_names, concurrency, duration_s, clock=time.perf_counter,
                    timeout=30.0):
    """The HTTP load phase: one request built once and sent again and again on `concurrency` keep-alive
    connections from one asyncio loop, each answer read to its end and its status checked.

    A request costs the client a few tens of microseconds of Python (no per-request tensor encoding, no
    threads handing the GIL to each other), so on a machine the client shares with the server the
    server gets the CPU, as with perf_analyzer. The answers' values were checked by the reference
    inference before the load phase.

    Every connect and every request ends within timeout seconds (the asyncio loop bounds the whole
    exchange, the one-client socket each send and read, as tritonclient's network_timeout does); a
    client whose request timed out stops and the phase counts it as an error, so the phase ends by
    duration_s + timeout.
    """
    import asyncio  # pylint: disable=import-outside-toplevel

    target = _LoadTarget(url, http_infer_request(url, model, version, inputs, output_names), float(timeout), clock)
    started = clock()
    stop_at = started + duration_s
    if concurrency == 1:
        latencies, errors = _blocking_load(target, stop_at)
    else:
        latencies, errors = [], []
        for found in asyncio.run(_async_load(target, stop_at, concurrency)):
            latencies += found[0]
            errors += found[1]
    elapsed = clock() - started
    return load_summary(latencies, errors, elapsed, inputs, concurrency)


class _LoadTarget:
    """What every client of the load phase sends where: the request bytes, host, port, timeout and clock."""

    def __init__(self, url, request, timeout, clock):
        self.request, self.timeout, self.clock = request, timeout, clock
        self.host, self.port = split_host_port(strip_scheme(url).split("/", 1)[0])
        self.timed_out = f"{url} did not answer an inference request within {timeout:g}s (the timeout)"


def _error_of(status, body):
    return f"HTTP {status.decode('ascii', 'replace')}: {body[:200].decode('utf-8', 'replace')}"


async def _read_body(reader, head):
    """The body of an HTTP/1.1 answer whose head was read: Content-Length or chunked (trailers skipped)."""
    lower = head.lower()
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line[15:])
            return await reader.readexactly(length) if length else b""
    if b"transfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    return b""


async def _async_load(target, stop_at, concurrency):
    """[(latencies, errors)] of `concurrency` keep-alive connections sending until stop_at from one loop."""
    import asyncio  # pylint: disable=import-outside-toplevel

    bounded = getattr(asyncio, "timeout", None)  # Python 3.11+: one timer per request, no extra task
    clock, timeout = target.clock, target.timeout

    async def exchange(reader, writer):
        writer.write(target.request)
        head = await reader.readuntil(b"\r\n\r\n")
        return head, await _read_body(reader, head)

    async def connect():
        return await asyncio.wait_for(asyncio.open_connection(target.host, target.port), timeout)

    async def worker():
        latencies, errors, writer = [], [], None
        try:
            reader, writer = await connect()
            while clock() < stop_at:
                t0 = clock()
                if bounded is not None:
                    async with bounded(timeout):
                        head, body = await exchange(reader, writer)
                else:
                    head, body = await asyncio.wait_for(exchange(reader, writer), timeout)
                status = head[9:12]
                if status == b"200":
                    latencies.append(clock() - t0)
                else:
                    errors.append(_error_of(status, body))
                if b"connection: close" in head.lower():
                    writer.close()
                    reader, writer = await connect()
        except asyncio.TimeoutError:
            errors.append(target.timed_out)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if writer is not None:
                writer.close()
        return latencies, errors

    return await asyncio.gather(*(worker() for _worker in range(concurrency)))


def _read_answer(stream):
    """(status, body, close) of one HTTP/1.1 answer read from a blocking stream."""
    status, length, chunked, close = stream.readline()[9:12], None, False, False
    while True:
        line = stream.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        lower = line.lower()
        if lower.startswith(b"content-length:"):
            length = int(lower[15:])
        elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
            chunked = True
        elif lower.startswith(b"connection:") and b"close" in lower:
            close = True
    body = stream.read(length) if length else b""
    while chunked:
        size = int(stream.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            break
        body += stream.read(size)
        stream.readline()
    return status, body, close


def _blocking_load(target, stop_at):
    """(latencies, errors) of one client: a blocking socket is cheaper per request than an event loop."""
    import socket  # pylint: disable=import-outside-toplevel

    latencies, errors, clock = [], [], target.clock
    try:
        with socket.create_connection((target.host, target.port), timeout=target.timeout) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = sock.makefile("rb")
            while clock() < stop_at:
                t0 = clock()
                sock.sendall(target.request)
                status, body, close = _read_answer(stream)
                if status == b"200":
                    latencies.append(clock() - t0)
                else:
                    errors.append(_error_of(status, body))
                if close:
                    break
    except socket.timeout:
        errors.append(target.timed_out)
    except (OSError, ValueError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    return latencies, errors
