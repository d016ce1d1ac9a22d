# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The triton_verify flow: wait → metadata → reference inference → load → metrics."""

from __future__ import annotations

import shutil
import tempfile

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import verify
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.tunnel import KubeTunnel, local_url, url_port


class VerifyFailed(TritonFilError):
    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


def _load(load, protocol, url, model, version, inputs, output_names, result, timeout):
    """The load phase with the engine asked for: the built-in Python loop, or perf_analyzer when installed."""
    engine = load.get("engine") or "python"
    binary = verify.find_perf_analyzer(load.get("perf_analyzer")) if engine in ("perf_analyzer", "auto") else None
    if engine == "perf_analyzer" and binary is None:
        where = f"at load.perf_analyzer={load['perf_analyzer']}" if load.get("perf_analyzer") else "on PATH"
        raise VerifyFailed(f"load.engine=perf_analyzer but no executable perf_analyzer is {where} — install it "
                           "(scripts/bootstrap.sh puts one in .tools/bin) or set load.engine to python or auto", result)
    if binary is None and protocol == "http":
        return verify.http_load_phase(url, model, version, inputs, output_names, load["concurrency"], load["duration"],
                                      timeout=timeout)
    if binary is None:
        return verify.load_phase(lambda: verify.make_client(protocol, url, timeout), protocol, model, version, inputs,
                                 output_names, load["concurrency"], load["duration"], timeout=timeout)
    workdir = tempfile.mkdtemp(prefix="triton-verify-")
    try:
        measured = verify.perf_analyzer_load(binary, protocol, url, model, version, inputs, load["concurrency"],
                                             load["duration"], workdir, timeout=timeout)
    except verify.VerifyError as exc:
        raise VerifyFailed(f"load phase: {exc}", result) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    measured["binary"] = binary
    return measured


def run_verify(params):
    url = params["url"]
    result = {"server": {"url": url, "protocol": params["protocol"]}}
    load = params.get("load")
    problem = _load_problem(load)
    if problem:
        raise VerifyFailed(problem, result)
    reference = _reference(params, result)
    timeout = params["timeout"]
    if timeout <= 0:
        raise VerifyFailed(f"timeout ({timeout}) must be a positive number of seconds", result)
    try:
        _verify(params, reference, load, result)
    except VerifyFailed:
        raise
    except verify.VerifyError as exc:
        raise VerifyFailed(f"{url}: {exc}" if url not in str(exc) else str(exc), result) from exc
    except Exception as exc:  # pylint: disable=broad-except  # the last net: a message, never a traceback
        raise VerifyFailed(f"{url}: unexpected {type(exc).__name__} from the client library: {exc} — check url, "
                           "protocol and the server log", result) from exc
    return result


def _load_problem(load):
    """What is wrong with the load settings (None when they are absent or fine)."""
    if load and load["concurrency"] < 1:
        return f"load.concurrency ({load['concurrency']}) must be at least 1"
    if load and load["duration"] <= 0:
        return f"load.duration ({load['duration']}) must be positive"
    return None


def _reference(params, result):
    """The parsed reference_file, or None when none is given."""
    if not params.get("reference_file"):
        return None
    try:
        return verify.load_reference(params["reference_file"])
    except verify.VerifyError as exc:
        raise VerifyFailed(str(exc), result) from exc


def _verify(params, reference, load, result):
    protocol, url, model, version = params["protocol"], params["url"], params["model"], params["model_version"]
    timeout = params["timeout"]
    server = verify.TritonServer(protocol, url, timeout)
    try:
        result["server"]["waited_s"] = verify.wait_ready(server, model, version, timeout)
        result["server"]["version"] = server.server_metadata().get("version")
        _check_metadata(server, params, result)
        if reference is not None:
            inputs, output_names = _check_inference(server, params, reference, result)
            if load:
                result["load"] = _load(load, protocol, url, model, version, inputs, output_names, result, timeout)
                if result["load"]["errors"]:
                    raise VerifyFailed(f"load phase: {result['load']['errors']} requests failed, first: "
                                       f"{result['load']['first_error']}", result)
        elif load:
            raise VerifyFailed("load needs reference_file (the request it sends)", result)
    finally:
        server.close()
    if params.get("metrics_url"):
        try:
            result["metrics"] = verify.scrape_metrics(params["metrics_url"], model, timeout=timeout)
        except verify.VerifyError as exc:
            raise VerifyFailed(str(exc), result) from exc


def _check_metadata(server, params, result):
    """The metadata phase: record the model's inputs/outputs and compare them with expected_config."""
    url, model, version = params["url"], params["model"], params["model_version"]
    try:
        metadata = verify.normalize_metadata(server.call("get_model_metadata", model, version))
    except verify.InferenceServerException as exc:
        raise VerifyFailed(f"{url}: model {model!r}: {exc}", result) from exc
    result["metadata"] = {kind: {name: {"datatype": d, "shape": s} for name, (d, s) in metadata[kind].items()}
                          for kind in ("inputs", "outputs")}
    if params.get("expected_config"):
        problems = verify.compare_metadata(metadata, params["expected_config"])
        if problems:
            raise VerifyFailed(f"model {model!r} metadata differs from its config: " + "; ".join(problems), result)


def _check_inference(server, params, reference, result):
    """The reference inference phase; returns the (inputs, output names) the load phase sends again."""
    protocol, model, version = params["protocol"], params["model"], params["model_version"]
    atol = params["atol"] if params.get("atol") is not None else float(reference.get("atol", 1e-5))
    rtol = params["rtol"] if params.get("rtol") is not None else float(reference.get("rtol", 1e-4))
    inputs, expected = verify.to_arrays(reference["inputs"]), verify.to_arrays(reference["outputs"])
    try:
        actual = verify.infer(server, protocol, model, version, inputs, list(expected))
    except verify.InferenceServerException as exc:
        raise VerifyFailed(f"inference on model {model!r} failed: {exc}", result) from exc
    except verify.VerifyError as exc:
        raise VerifyFailed(f"inference on model {model!r}: {exc} — the model hangs or is overloaded; raise "
                           "timeout or read the server log", result) from exc
    report, problems = verify.compare_outputs(actual, expected, atol, rtol)
    result["inference"] = {"rows": int(next(iter(inputs.values())).shape[0]), "atol": atol, "rtol": rtol,
                           "outputs": report, "matched": not problems}
    if problems:
        raise VerifyFailed(f"model {model!r} answered differently from the reference: " + "; ".join(problems),
                           result)
    return inputs, list(expected)


def run_verify_via_tunnel(params):
    """run_verify with url/metrics_url pointed at a local port-forward to a Ready pod (kubernetes_tunnel).

    Raises TunnelError when no tunnel opens, VerifyFailed (naming the pod and the API server's
    port-forward errors, result["tunnel"] set) when the verification fails through it.
    """
    spec, params = params["kubernetes_tunnel"], dict(params)
    keys = [key for key in ("url", "metrics_url") if params.get(key)]
    ports = {key: url_port(params[key]) for key in keys}
    original_url = params["url"]
    tunnel = KubeTunnel(spec["kubeconfig"], spec.get("context"), spec["namespace"], spec["selector"],
                        ports.values(), wait_s=params["timeout"])
    with tunnel:
        for key in keys:
            params[key] = local_url(params[key], tunnel.ports[ports[key]])
        try:
            result = run_verify(params)
        except VerifyFailed as exc:
            refused = "; ".join(tunnel.errors[:3])
            streams = f"; port-forward errors: {refused}" if refused else ""
            raise VerifyFailed(f"(through a port-forward to pod {spec['namespace']}/{tunnel.pod}) {exc}{streams}",
                               dict(exc.result, tunnel=tunnel.describe())) from exc
    result["server"]["url"] = original_url
    result["tunnel"] = tunnel.describe()
    return result
