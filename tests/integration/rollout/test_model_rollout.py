"""model_rollout on two real tritonservers (explicit model control) reading one fake-gcs-server bucket.

The tests run in order on one deployment: `make demo` (site.yml publishes version 1, both servers start), a
second converge writing nothing, check mode, `make demo` again after retraining into version 2 (rolled out
while our own clients keep sending requests: none fails), a wrong version 3 refused with version 2 still
serving, a restarted server loading the pinned version, a new model, and a removed one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollout_support import LoadLoop, ready, served, wait_served
from testlib import REPO, run_playbook

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SITE = REPO / "playbooks" / "site.yml"
INVENTORY = REPO / "inventories" / "local"
PREFIX = "triton/model_repository"
SUMMARY = "One line per deployment (a failed one does not stop the others)"
ROLLOUT_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: rollout
      rapids.triton_fil.triton_model_rollout:
        src: "{{ src }}"
        bucket: "{{ bucket }}"
        prefix: "{{ prefix }}"
        config_name: cpu
        auth_kind: anonymous
        api_endpoint: "{{ gcs }}"
        servers: "{{ servers }}"
        remove_missing: "{{ remove_missing | default(false) }}"
        timeout: 120
"""


def urls(two_servers):
    return [s["http_url"] for s in two_servers["servers"]]


def site(two_servers, repo, **kwargs):
    env = {**two_servers["env"]}
    return run_playbook(SITE, inventory=INVENTORY, env=env, extra_vars={
        "gcs_models_src": str(repo), "verify_reference_file": str(repo / "fil_reference.json"),
        "verify_load_duration": 1}, **kwargs)


def rollout(two_servers, repo, ansible, **kwargs):
    env = two_servers["env"]
    extra = {"src": str(repo), "bucket": env["TRITON_FIL_BUCKET"], "prefix": PREFIX,
             "gcs": env["TRITON_FIL_GCS_ENDPOINT"],
             "servers": [{"name": s["name"], "url": s["http_url"]} for s in two_servers["servers"]]}
    extra.update(kwargs.pop("extra_vars", {}))
    return ansible(ROLLOUT_PLAY, extra_vars=extra, **kwargs)


def retrain(repo, trees, version):
    """generate.py --trees N --version V --dest repo: a retrained model and its reference."""
    proc = subprocess.run([sys.executable, str(REPO / "model_repository" / "generate.py"), "--trees", str(trees),
                           "--version", str(version), "--dest", str(repo)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def bucket_config(two_servers, model="fil", variant="configs/cpu.pbtxt"):
    env = two_servers["env"]
    return two_servers["gcs"].read(env["TRITON_FIL_BUCKET"], f"{PREFIX}/{model}/{variant}").decode()


def reference(repo, model="fil"):
    return json.loads((repo / f"{model}_reference.json").read_text())


@pytest.fixture(scope="module")
def demo(two_servers, repo):
    """`make demo` on an empty bucket: gcs_models uploads the version folder, the rollout publishes the
    configurations (no server serves yet), the supervisor starts both servers on them, verify passes."""
    first = site(two_servers, repo)
    assert first.rc == 0, first.stdout[-5000:]
    return first


def test_first_demo_publishes_version_1_and_both_servers_serve_it(two_servers, demo):
    rollout_result = demo.result("Roll the model repository out to the serving Triton servers (candidate "
                                 "checked, then switched)")
    assert rollout_result["models"]["fil"]["action"] == "publish" and rollout_result["servers"] == []
    assert sorted(rollout_result["uploaded"]) == [f"{PREFIX}/fil/config.pbtxt", f"{PREFIX}/fil/configs/cpu.pbtxt"]
    sync = demo.result("Sync the model repository to the bucket")
    assert [a["object"] for a in sync["actions"]] == [f"{PREFIX}/fil/1/xgboost.json"], "configurations are the rollout's"
    for url in urls(two_servers):
        wait_served(url, [1])
    assert "version_policy: { specific: { versions: [ 1 ] } }" in bucket_config(two_servers)
    assert demo.result(SUMMARY)["results"][0]["msg"].startswith("local: VERIFIED at http://127.0.0.1:")


def test_a_second_run_changes_nothing_and_writes_nowhere(two_servers, repo, demo, ansible):
    two_servers["gcs"].mark()
    run = rollout(two_servers, repo, ansible)
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result("rollout")
    assert result["changed"] is False and result["models"]["fil"]["action"] == "unchanged"
    assert [s["name"] for s in result["servers"]] == ["triton-0", "triton-1"]
    assert result["repository_calls"] == [] and result["uploaded"] == []
    assert two_servers["gcs"].writes() == []


def test_check_mode_shows_what_would_load_where_and_writes_nothing(two_servers, repo, demo, ansible):
    retrain(repo, trees=300, version=2)
    two_servers["gcs"].mark()
    run = rollout(two_servers, repo, ansible, check=True, diff=True)
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result("rollout")
    assert result["changed"] is True and result["repository_calls"] == []
    assert result["models"]["fil"]["servers"] == {"triton-0": {"before": [1], "after": [2]},
                                                  "triton-1": {"before": [1], "after": [2]}}
    assert "triton-0: [1] -> [2]; triton-1: [1] -> [2]" in result["plan"][0]
    assert result["diff"]["before"].startswith("triton-0: fil [1]\ntriton-1: fil [1]\n")
    assert f"{PREFIX}/fil/2/xgboost.json" in result["diff"]["after"]
    assert two_servers["gcs"].writes() == []
    assert [served(u) for u in urls(two_servers)] == [[1], [1]]


def test_second_demo_rolls_version_2_out_under_load_with_zero_failed_requests(two_servers, repo, demo):
    """`make demo` after retraining into version 2: switched on both servers with clients running throughout."""
    with LoadLoop(urls(two_servers), reference(repo)) as loop:
        time.sleep(1)
        second = site(two_servers, repo)
        time.sleep(1)
    assert second.rc == 0, second.stdout[-5000:]
    # Our own clients: not one failed request, and both versions answered them.
    assert loop.failures == [] and loop.requests > 50
    assert set(loop.versions) == {"1", "2"}, loop.versions
    result = second.result("Roll the model repository out to the serving Triton servers (candidate "
                           "checked, then switched)")
    fil = result["models"]["fil"]
    assert fil["action"] == "rollout" and set(fil["candidate"]) == {"triton-0", "triton-1"}
    assert all(c["matched"] and c["answered_by"] == "2" for c in fil["candidate"].values())
    for name, switch in fil["switch"].items():
        assert switch["failed"] == 0 and switch["requests"] > 0, (name, switch)
        assert set(switch["answered_by_version"]) == {"1", "2"}, (name, switch)
    assert result["repository_calls"].count("POST v2/repository/models/fil__rollout_candidate/load") == 2
    assert result["repository_calls"].count("POST v2/repository/models/fil/load") == 2
    assert [served(u) for u in urls(two_servers)] == [[2], [2]]
    assert "version_policy: { specific: { versions: [ 2 ] } }" in bucket_config(two_servers)
    assert "version_policy: { specific: { versions: [ 2 ] } }" in bucket_config(two_servers, variant="config.pbtxt")
    total = fil["traffic"]["requests"]
    line = second.result(SUMMARY)["results"][0]["msg"]
    assert line.endswith(f"; rolled out fil: [1] -> [2] on 2 server(s), 0 of {total} requests failed during the switch")
    report = second.result("Verify report")["msg"]
    assert report[-1] == f"rollout: fil: [1] -> [2] on 2 server(s), 0 of {total} requests failed during the switch"


def test_a_version_with_wrong_outputs_is_refused_and_the_old_one_keeps_serving(two_servers, repo, demo, ansible):
    # Version 3 is version 1's model; the reference still describes version 2: its answers differ.
    (repo / "fil" / "3").mkdir()
    shutil.copy(repo / "fil" / "1" / "xgboost.json", repo / "fil" / "3" / "xgboost.json")
    env = two_servers["env"]
    before = {v: bucket_config(two_servers, variant=v) for v in ("config.pbtxt", "configs/cpu.pbtxt")}
    objects = two_servers["gcs"].names(env["TRITON_FIL_BUCKET"])
    two_servers["gcs"].mark()
    try:
        with LoadLoop(urls(two_servers), reference(repo)) as loop:
            run = rollout(two_servers, repo, ansible)
    finally:
        shutil.rmtree(repo / "fil" / "3")
    assert run.rc != 0
    msg = run.result("rollout")["msg"]
    assert "fil: version 3 refused on server triton-0: answered differently from the reference" in msg, msg
    assert "output 'output__0'" in msg and "triton-0 keeps serving [2], triton-1 keeps serving [2]" in msg
    assert "the bucket's configuration still pins [2] (fil/3/ stay there unserved; nothing was deleted)" in msg
    # Version 2 served every request meanwhile, the candidate is gone, the bucket lost nothing and still pins 2.
    assert loop.failures == [] and set(loop.versions) == {"2"}
    assert [served(u) for u in urls(two_servers)] == [[2], [2]]
    assert not any(ready(u, "fil__rollout_candidate") for u in urls(two_servers))
    assert {v: bucket_config(two_servers, variant=v) for v in before} == before
    writes = two_servers["gcs"].writes()
    assert writes and all(method == "POST" and path.startswith("/upload/") for method, path, _status in writes), writes
    after = two_servers["gcs"].names(env["TRITON_FIL_BUCKET"])
    assert set(objects) < set(after) and f"{PREFIX}/fil/3/xgboost.json" in after


def test_a_server_that_restarts_loads_the_pinned_version(two_servers, repo, demo):
    """The bucket holds version 3's folder (refused) and 2 (pinned): a restarted server serves 2 only."""
    url = two_servers["servers"][1]["http_url"]
    port = url.rsplit(":", 1)[1]
    supervisor = two_servers["stack"].running_pid()
    pids = [p for p in os.listdir("/proc") if p.isdigit() and _is_server(p, supervisor, port)]
    assert len(pids) == 1
    os.kill(int(pids[0]), signal.SIGTERM)  # the stack's own child, by its pid
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{pids[0]}").exists():
        time.sleep(0.2)
    wait_served(url, [2])
    log = (two_servers["run_dir"] / "tritonserver-1.log").read_text()
    restart = log[log.rindex("--- local-stack: starting tritonserver"):]
    assert '"loading: fil:2"' in restart and "fil:3" not in restart and "fil:1" not in restart


def _is_server(pid, parent, port):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return int(stat[1]) == parent and f"--http-port={port}".encode() in cmdline


def add_model(repo, name, source="fil"):
    """A second model: the sample's folder under another name (its configurations renamed)."""
    shutil.copytree(repo / source, repo / name)
    for config in [repo / name / "config.pbtxt", *(repo / name / "configs").glob("*.pbtxt")]:
        config.write_text(config.read_text().replace(f'name: "{source}"', f'name: "{name}"'))
    shutil.copy(repo / f"{source}_reference.json", repo / f"{name}_reference.json")


def test_a_new_model_rolls_out_the_same_way(two_servers, repo, demo, ansible):
    add_model(repo, "churn")
    run = rollout(two_servers, repo, ansible)
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result("rollout")
    churn = result["models"]["churn"]
    assert churn["action"] == "rollout" and churn["new_model"] is True and churn["desired"] == [2]
    assert all(c["matched"] for c in churn["candidate"].values()) and len(churn["candidate"]) == 2
    assert result["models"]["fil"]["action"] == "unchanged"
    assert result["served_models"] == ["churn", "fil"]
    assert [served(u, "churn") for u in urls(two_servers)] == [[2], [2]]
    assert "versions: [ 2 ]" in bucket_config(two_servers, "churn")


def test_a_removed_model_is_kept_unless_removal_is_asked_for(two_servers, repo, demo, ansible):
    shutil.rmtree(repo / "churn")
    (repo / "churn_reference.json").unlink()
    kept = rollout(two_servers, repo, ansible)
    assert kept.rc == 0 and kept.result("rollout")["changed"] is False
    assert kept.result("rollout")["models"]["churn"]["action"] == "kept"
    assert kept.result("rollout")["served_models"] == ["churn", "fil"]
    env = two_servers["env"]
    two_servers["gcs"].mark()
    removed = rollout(two_servers, repo, ansible, extra_vars={"remove_missing": True})
    assert removed.rc == 0, removed.stdout[-3000:]
    result = removed.result("rollout")
    assert result["changed"] is True and result["models"]["churn"]["action"] == "remove"
    assert result["served_models"] == ["fil"]
    assert sorted(result["repository_calls"]) == ["POST v2/repository/models/churn/unload"] * 2
    assert [served(u, "churn") for u in urls(two_servers)] == [[], []]
    assert [served(u) for u in urls(two_servers)] == [[2], [2]]
    # Nothing deleted: the bucket still holds the model, and saw no write at all.
    assert two_servers["gcs"].writes() == []
    assert f"{PREFIX}/churn/config.pbtxt" in two_servers["gcs"].names(env["TRITON_FIL_BUCKET"])


def test_a_stack_started_on_a_published_bucket_serves_when_up_returns(two_servers):
    """A second `make demo` starts the stack on a bucket that holds models: its servers serve by the time
    up() returns (as pods keep running between two runs on GKE), so model_rollout finds them serving and
    switches them instead of seeing no deployment at all."""
    stack = two_servers["stack"]
    stack.down()
    env = stack.up()
    assert [served(s["http_url"]) for s in json.loads(env["TRITON_FIL_SERVERS"])] == [[2], [2]]
