#!/usr/bin/env python
"""Time to ready: site.yml's concurrent cluster ∥ image ∥ models vs the same roles run one after another.

The GKE simulator answers with latencies scaled 1:60 from real GKE operations (cluster create
~6 min -> 6 s, GPU node pool ~4 min -> 4 s, +1 s for a pool created inside the cluster operation);
the polling pauses are scaled the same way. The models go to a real fake-gcs-server and the image
is copied between two real registries (a stand-in for the NGC image, large enough that the copy
takes seconds). Ansible's own per-task cost is not scaled (it is real time here, while real GKE
operations dwarf it), which caps what any overlap can gain in this run. Three runs per repetition,
each on fresh names:

  concurrent  site.yml --tags preflight,infra (what users run)
  sequential  the same roles back to back: gke_cluster, gcr_image, gcs_models, workload_identity
  chain       only the longest dependency chain: preflight -> cluster with its GPU pool -> kubeconfig,
              and the Workload Identity bindings, which need the cluster; Ansible included

Targets: sequential/concurrent >= 1.8x and concurrent/chain <= 1.15x. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from common import REPO, median, print_table, timed, write_result

from local_stack import images
from local_stack.registry import Registry, start_registry, stop
from local_stack.stack import start_fake_gcs, stop_process
from local_stack.simulators.gke import GkeSimulator
from local_stack.simulators.iam import IamSimulator

SCALE = 60.0
# Operation latencies of real GKE, scaled. A pool created inside CreateCluster comes up in parallel with the
# default pool; it is charged one more (real) minute per extra pool, a conservative guess.
LATENCIES = {"CREATE_CLUSTER": 360 / SCALE, "CREATE_NODE_POOL": 240 / SCALE, "CREATE_CLUSTER_EXTRA_POOL": 60 / SCALE,
             "default": 30 / SCALE}
# The polling pauses scale too (role defaults: 15 s between job polls, GKE operations polled at most every
# 15 s, image copy polled every 10 s); unscaled, a 4 s operation would wait for an 8 s poll.
POLL = 15 / SCALE
IMAGE_POLL = 10 / SCALE
SEQUENTIAL = """
- hosts: triton_fil
  gather_facts: false
  roles:
    - rapids.triton_fil.preflight
    - rapids.triton_fil.gke_cluster
    - rapids.triton_fil.gcr_image
    - rapids.triton_fil.gcs_models
    - rapids.triton_fil.workload_identity
"""
# The critical path: the Workload Identity bindings need the cluster (Google accepts
# PROJECT.svc.id.goog[NS/KSA] members only once a Workload Identity cluster exists), so they sit on it.
CHAIN = """
- hosts: triton_fil
  gather_facts: false
  roles:
    - rapids.triton_fil.preflight
    - rapids.triton_fil.gke_cluster
    - rapids.triton_fil.workload_identity
"""


def write_inventory(path, name, sim, iam, gcs_url, source, dest, work):
    host = {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "triton_fil_target": "gke", "gcp_project": "bench-project", "gcp_auth_kind": "accesstoken",
        "gcp_access_token": "ya29.bench", "gke_cluster_api_endpoint": sim.url, "gke_cluster_name": name,
        "gke_cluster_poll_interval": POLL, "gke_cluster_kubeconfig_path": str(work / f"{name}.kubeconfig"),
        "gcp_storage_endpoint": gcs_url, "gcs_models_bucket": "bench-models", "gcs_models_prefix": name,
        "gcs_models_bucket_location": "US-CENTRAL1",
        "gcs_models_src": str(REPO / "model_repository"),
        "gcr_image_source": f"{source}/nvidia/tritonserver:26.06-py3", "gcr_image_registry": dest,
        "gcr_image_project": "bench-project", "gcr_image_repository": "triton", "gcr_image_tag": name,
        "gcr_image_create_repository": "never", "gcr_image_insecure_registries": [source, dest],
        "gcr_image_poll_interval": IMAGE_POLL,
        "workload_identity_iam_endpoint": iam.urls["iam"],
        "workload_identity_resourcemanager_endpoint": iam.urls["resourcemanager"],
        "workload_identity_storage_endpoint": iam.urls["storage"],
        # No Compute / Service Usage server here: the preflight's live questions are not asked.
        "preflight_live_checks": False,
        # The Kubernetes and verify plays are not run (--tags); their argument specs still resolve.
        "triton_fil_endpoint": {"http_url": "http://unused", "grpc_url": "unused:0", "metrics_url": ""},
    }
    path.write_text(yaml.safe_dump({"triton_fil": {"hosts": {"bench": host}}}))


def run(playbook, inventory, extra=()):
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(playbook), "-i", str(inventory), *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    if proc.returncode:
        raise SystemExit(f"{Path(playbook).name} failed:\n{proc.stdout[-4000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--image-mib", type=int, default=512, help="size of the stand-in image to copy")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    sim = GkeSimulator(op_seconds=LATENCIES).serve()
    iam = IamSimulator().serve()
    iam.add_bucket("bench-models", "bench-project")
    gcs_url, gcs = start_fake_gcs(work / "gcs", work / "gcs.log", REPO / ".venv")
    source_host, source_log, source_proc = start_registry(work / "source")
    dest_host, _dest_log, dest_proc = start_registry(work / "dest")
    try:
        per_layer = args.image_mib * 1024 * 1024 // 6
        Registry(source_host, source_log, source_proc).push_image(
            "nvidia/tritonserver", "26.06-py3", images.make_image(layers=[images.random_layer(per_layer) for _layer in range(6)]))
        bench_files = {"sequential": work / "sequential.yml", "chain": work / "chain.yml"}
        bench_files["sequential"].write_text(SEQUENTIAL)
        bench_files["chain"].write_text(CHAIN)
        samples = {"concurrent": [], "sequential": [], "chain": []}
        for rep in range(args.reps):
            order = ["concurrent", "sequential", "chain"]
            order = order[rep % 3:] + order[:rep % 3]
            for mode in order:
                name = f"ready-{rep}-{mode}"
                inventory = work / f"{name}.yml"
                write_inventory(inventory, name, sim, iam, gcs_url, source_host, dest_host, work)
                if mode == "concurrent":
                    seconds, _out = timed(run, REPO / "playbooks" / "site.yml", inventory, ["--tags", "preflight,infra"])
                else:
                    seconds, _out = timed(run, bench_files[mode], inventory)
                samples[mode].append(seconds)
        conc, seq, chain = (median(samples[m]) for m in ("concurrent", "sequential", "chain"))
        print_table(f"time to ready (GKE latencies scaled 1:{SCALE:.0f}, {args.image_mib} MiB image copy), "
                    f"median of {args.reps} (targets: sequential/concurrent >= 1.8x, concurrent/chain <= 1.15x)",
                    ["run", "seconds", "ratio"],
                    [["concurrent (site.yml)", f"{conc:.1f}", ""],
                     ["sequential", f"{seq:.1f}", f"sequential/concurrent {seq / conc:.2f}x"],
                     ["longest chain (cluster+pool, bindings)", f"{chain:.1f}", f"concurrent/chain {conc / chain:.2f}x"],
                     ["best possible here", "", f"sequential/chain {seq / chain:.2f}x"]])
        hidden = (seq - conc) / (seq - chain) if seq > chain else float("nan")
        print(f"overlap: {hidden:.0%} of the time outside the longest chain ({seq - chain:.1f} s) is hidden behind it; "
              f"no schedule beats sequential/chain = {seq / chain:.2f}x with these step lengths")
        write_result("time_to_ready", {"reps": args.reps, "scale": SCALE, "latencies_s": LATENCIES,
                                       "image_mib": args.image_mib, "concurrent_s": conc, "sequential_s": seq,
                                       "chain_s": chain, "speedup": seq / conc, "vs_chain": conc / chain, "best_possible": seq / chain,
                                       "hidden_fraction": (seq - conc) / (seq - chain) if seq > chain else None,
                                       "samples": samples})
    finally:
        sim.close()
        iam.close()
        stop_process(gcs)
        stop(source_proc)
        stop(dest_proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
