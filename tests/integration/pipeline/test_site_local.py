"""site.yml on the local stack: models → fake GCS → Triton loads gs:// → verified inference."""

from __future__ import annotations

import json
import time

import pytest

from testlib import REPO, run_playbook

pytestmark = pytest.mark.stack

INVENTORY = REPO / "inventories" / "local"
SITE = REPO / "playbooks" / "site.yml"


@pytest.fixture(scope="module")
def converged(local_stack):
    """The first converge of site.yml: everything is created."""
    first = run_playbook(SITE, inventory=INVENTORY, env=local_stack)
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
    return first


def test_first_run_syncs_and_verifies(converged):
    sync = converged.result("Sync the model repository to the bucket")
    assert sync["changed"] is True and sync["uploaded"] >= 1
    assert sync["url"].startswith("gs://triton-fil-local/triton/model_repository")
    # No server serves yet: the rollout publishes the configurations, pinned to version 1.
    published = converged.result("Roll the model repository out to the serving Triton servers (candidate "
                                 "checked, then switched)")
    assert published["models"]["fil"]["action"] == "publish" and len(published["uploaded"]) == 2
    verify = converged.result("Verify inference against the reference")
    assert verify["inference"]["matched"] is True
    assert verify["server"]["version"] == "2.51.0"
    assert verify["load"]["requests"] > 0 and verify["load"]["errors"] == 0
    assert verify["metrics"]["nv_inference_request_success"] >= verify["load"]["requests"]


def test_model_repository_is_validated_once_per_run(converged):
    """preflight validates the folder; gcs_models reuses its models instead of validating it again."""
    assert converged.result("Validate the model repository with Triton's ModelConfig").get("skipped") is True
    handed = converged.result("Hand the model repository location to the next roles")["ansible_facts"]
    names = [model["name"] for model in handed["triton_fil_models"]]
    assert "fil" in names and all(model["backend"] for model in handed["triton_fil_models"])


def test_mirrored_digest_reaches_the_release_values(converged):
    image = converged.result("Hand the pushed image to the next roles")["ansible_facts"]["triton_fil_image"]
    assert image["ref"] == f"{image['repository']}@{image['digest']}" and image["digest"].startswith("sha256:")
    shown = converged.result("Show what the release would run")["msg"]
    assert shown == f"release values: image {image['ref']}, models gs://triton-fil-local/triton/model_repository"


def test_second_run_changes_nothing(converged, local_stack):
    second = run_playbook(SITE, inventory=INVENTORY, env=local_stack)
    assert second.rc == 0, second.stdout[-4000:]
    assert second.changed == 0
    sync = second.result("Sync the model repository to the bucket")
    assert sync["bytes_sent"] == 0 and sync["planned_uploads"] == 0


def test_check_mode_plans_nothing_after_converge(converged, local_stack):
    check = run_playbook(SITE, inventory=INVENTORY, env=local_stack, check=True, diff=True)
    assert check.rc == 0 and check.changed == 0, check.stdout[-4000:]


VERIFY_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: verify
      rapids.triton_fil.triton_verify:
        url: "{{ url }}"
        protocol: "{{ protocol | default('http') }}"
        model: "{{ model | default('fil') }}"
        timeout: "{{ timeout | default(30) }}"
        reference_file: "{{ reference }}"
"""


LOAD_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: verify
      rapids.triton_fil.triton_verify:
        url: "{{ url }}"
        protocol: "{{ protocol }}"
        model: fil
        timeout: 30
        reference_file: "{{ reference }}"
        load: {concurrency: 2, duration: 1.5, engine: "{{ engine }}", perf_analyzer: "{{ binary | default(omit) }}"}
"""


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_verify_load_with_perf_analyzer(converged, local_stack, ansible, protocol):
    """The perf_analyzer engine drives the real tritonserver and its report fills the same result fields."""
    binary = REPO / ".tools" / "bin" / "perf_analyzer"
    assert binary.is_file(), "run make bootstrap: it unpacks perf_analyzer into .tools/bin"
    url = local_stack["TRITON_FIL_HTTP_URL" if protocol == "http" else "TRITON_FIL_GRPC_URL"]
    ev = {"url": url, "protocol": protocol, "engine": "perf_analyzer", "binary": str(binary),
          "reference": str(REPO / "model_repository" / "fil_reference.json")}
    run = ansible(LOAD_PLAY, extra_vars=ev)
    assert run.rc == 0, run.stdout[-3000:]
    load = run.result("verify")["load"]
    assert load["engine"] == "perf_analyzer" and load["concurrency"] == 2 and load["errors"] == 0
    assert load["throughput_rps"] > 0 and load["rows_per_s"] == pytest.approx(load["throughput_rps"] * 8, rel=0.01)
    assert 0 < load["latency_ms"]["p50"] <= load["latency_ms"]["p99"]
    missing = ansible(LOAD_PLAY, extra_vars={**ev, "binary": str(REPO / "no" / "perf_analyzer")})
    assert missing.rc != 0 and "no executable perf_analyzer" in missing.result("verify")["msg"]
    auto = ansible(LOAD_PLAY, extra_vars={**ev, "engine": "auto", "binary": str(REPO / "no" / "perf_analyzer")})
    assert auto.rc == 0 and auto.result("verify")["load"]["engine"] == "python", "auto falls back to the loop"


def test_verify_over_grpc(converged, local_stack, ansible):
    run = ansible(VERIFY_PLAY, extra_vars={"url": local_stack["TRITON_FIL_GRPC_URL"], "protocol": "grpc",
                                           "reference": str(REPO / "model_repository" / "fil_reference.json")})
    assert run.rc == 0, run.stdout[-3000:]
    assert run.result("verify")["inference"]["matched"] is True


def test_verify_fails_loudly_when_an_output_differs(converged, local_stack, ansible, tmp_path):
    reference = json.loads((REPO / "model_repository" / "fil_reference.json").read_text())
    name = next(iter(reference["outputs"]))
    data = reference["outputs"][name]["data"]
    # Flip one expected value far outside any tolerance.
    row = data[3] if isinstance(data[3], list) else None
    if row is not None:
        row[0] = row[0] + 0.5
    else:
        data[3] = data[3] + 0.5
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(reference))
    run = ansible(VERIFY_PLAY, extra_vars={"url": local_stack["TRITON_FIL_HTTP_URL"], "reference": str(wrong)})
    assert run.rc != 0
    msg = run.result("verify")["msg"]
    assert f"output '{name}'" in msg and "answered differently from the reference" in msg
    assert "first at [3" in msg


def test_verify_unknown_model_fails_with_the_hint(converged, local_stack, ansible):
    """A model the repository index does not list fails at once, not at the 120 s deadline."""
    started = time.monotonic()
    run = ansible(VERIFY_PLAY, extra_vars={"url": local_stack["TRITON_FIL_HTTP_URL"], "model": "nope", "timeout": 120,
                                           "reference": str(REPO / "model_repository" / "fil_reference.json")})
    assert run.rc != 0 and time.monotonic() - started < 60
    assert "model 'nope' is not in the repository" in run.result("verify")["msg"]
    assert "(it has: fil)" in run.result("verify")["msg"]


def test_build_mode_builds_on_the_stacks_engine_then_changes_nothing(converged, local_stack):
    """gcr_image_mode=build on the local stack: podman's Docker API builds local_stack/image_context FROM the
    stack registry's base image and pushes it; the release values get its digest; a second run changes nothing.
    Runs last in this file: it moves the destination tag away from the mirrored image."""
    assert local_stack.get("TRITON_FIL_DOCKER_HOST", "").startswith("unix://"), "the stack starts podman"
    build = {"gcr_image_mode": "build"}
    first = run_playbook(SITE, inventory=INVENTORY, env=local_stack, extra_vars=build)
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
    built = first.result("Wait for the image copy (each retry line is one poll)")
    assert built["pushed"] is True and built["digest"].startswith("sha256:")
    image = first.result("Hand the pushed image to the next roles")["ansible_facts"]["triton_fil_image"]
    assert image["digest"] == built["digest"]
    assert first.result("Show what the release would run")["msg"].startswith(f"release values: image {image['ref']},")
    second = run_playbook(SITE, inventory=INVENTORY, env=local_stack, extra_vars=build)
    assert second.rc == 0, second.stdout[-4000:]
    assert second.changed == 0
    assert second.result("Wait for the image copy (each retry line is one poll)")["pushed"] is False
