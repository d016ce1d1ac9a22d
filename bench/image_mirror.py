#!/usr/bin/env python
"""Image mirror: rapids.triton_fil.container_image_mirror vs `skopeo copy`, side by side between local registries.

A generated image (6 layers of random bytes, ~486 MiB) and a 2-platform index (the amd64 image plus an
arm64 image sharing its first layer) sit in a source docker-registry. For each tool and repetition a
fresh destination docker-registry is started (so neither tool's blob cache knows it yet), behind a
byte-counting TCP proxy, and the phases run in order:

1. first copy          SRC/bench/app:v1    -> DST/mirror/app:v1
2. no-op re-copy       the same again (bytes and blobs sent counted)
3. second repository   SRC/bench/app:v1    -> DST/mirror2/app:v1 (the registry holds every blob in mirror/app:
                       cross-repository mounts; ours knows it from its blob-location cache, skopeo from its
                       blob info cache, as each tool's earlier copy left them)
4. one layer changed   SRC/bench/app:v2 (one 60 MiB layer replaced) -> DST/mirror/app:v2
5. 2-platform index    SRC/bench/app:multi -> DST/multi/app:multi, all platforms (ours platform=all, skopeo --all),
                       into a registry of its own (a first copy of an index)

Both tools run as the one task of a play through ansible-playbook, the same way: ours a
container_image_mirror task, skopeo an `ansible.builtin.command: skopeo copy ...` task. Two framings:
the task's duration (json callback), and the whole process (ansible-playbook's wall time for ours, the
skopeo process's `delta` for skopeo). At the destination registry (its access log) every blob upload
(PUT .../blobs/uploads/...?digest=, 201), every mount (POST ...?mount=, 201) and every manifest PUT is
counted, and the proxy counts the bytes the client sent. After every phase the destination's manifest
digest must equal the source's. Prints medians and ratios ours/skopeo. The machine is shared: only
ratios from one run mean anything.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import urllib.request
from pathlib import Path

from common import CountingProxy, median, print_table, run_one_task_play, write_result

from local_stack import images
from local_stack.registry import Registry, start_registry, stop

MIB = 1024 * 1024
AMD64_LAYERS = (160, 120, 90, 60, 40, 16)  # MiB: 486 MiB
ARM64_OWN_LAYERS = (60, 30)  # plus the first amd64 layer
CHANGED_LAYER = 3  # index of the 60 MiB layer replaced in v2
ACCEPT = ", ".join([images.OCI_INDEX, images.DOCKER_LIST, images.OCI_MANIFEST, images.DOCKER_MANIFEST])

PLAYS = {
    "ours": """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: copy
      rapids.triton_fil.container_image_mirror:
        source: "{{ src }}"
        destination: "{{ dst }}"
        platform: all
        insecure_registries: "{{ insecure }}"
        blob_cache: "{{ blob_cache }}"
        auth_kind: anonymous
""",
    "skopeo": """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: copy
      ansible.builtin.command:
        argv: "{{ ['skopeo', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false'] + (['--all'] if all_platforms
                  else []) + ['docker://' ~ src, 'docker://' ~ dst] }}"
      changed_when: true
""",
}
PHASES = ["first", "noop", "second_repo", "layer_changed", "index"]


def build_images(scale=1.0):
    def layer(mib):
        return images.random_layer(int(mib * scale * MIB), compresslevel=1)

    layers = [layer(size) for size in AMD64_LAYERS]
    v1 = images.make_image(layers=layers)
    changed = list(layers)
    changed[CHANGED_LAYER] = layer(AMD64_LAYERS[CHANGED_LAYER])
    v2 = images.make_image(layers=changed)
    arm = images.make_image(arch="arm64", variant="v8", layers=[layers[0]] + [layer(s) for s in ARM64_OWN_LAYERS])
    return v1, v2, images.make_index([v1, arm], oci=False)


def digest_at(registry, repository, ref):
    request = urllib.request.Request(f"{registry.url}/v2/{repository}/manifests/{ref}", method="HEAD",
                                     headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback registry
        return response.headers.get("Docker-Content-Digest")


def run_play(tool, src, dst, insecure, workdir, blob_cache, all_platforms):
    """(process seconds, task seconds, result) of the tool's one-task play."""
    play = workdir / f"copy-{tool}.yml"
    play.write_text(PLAYS[tool])
    extra = {"src": src, "dst": dst, "insecure": insecure, "blob_cache": str(blob_cache),
             "all_platforms": all_platforms}
    wall, duration, result = run_one_task_play(play, extra, f"{tool} {src} -> {dst}")
    if tool == "ours":
        return wall, duration, result
    hours, minutes, seconds = result["delta"].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds), duration, result


class Destination:
    """A fresh docker-registry behind a byte-counting proxy."""

    def __init__(self, root):
        host, log_file, self.proc = start_registry(root)
        self.registry = Registry(host, log_file, self.proc)
        port = int(host.rsplit(":", 1)[1])
        self.proxy = CountingProxy("127.0.0.1", port)
        self.host = f"127.0.0.1:{self.proxy.port}"

    def mark(self):
        self.registry.mark()
        self.proxy.reset()

    def counts(self):
        writes = self.registry.writes()
        return {"uploads": len(self.registry.blob_uploads_finished()),
                "mounts": len([w for w in writes if w[0] == "POST" and "mount=" in w[1] and w[2] == 201]),
                "manifest_puts": len([w for w in writes if w[0] == "PUT" and "/manifests/" in w[1]]),
                "bytes_sent": self.proxy.sent}

    def close(self):
        self.proxy.close()
        stop(self.proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="layer sizes times this (a quick smoke run: 0.02)")
    args = parser.parse_args()
    if not shutil.which("skopeo"):
        raise SystemExit("skopeo is missing: run make bootstrap (it installs Debian's skopeo)")
    work = Path(tempfile.mkdtemp(prefix="bench-mirror-"))
    samples = {tool: {phase: [] for phase in PHASES} for tool in PLAYS}
    source = None
    try:
        host, log_file, source_proc = start_registry(work / "source")
        source = Registry(host, log_file, source_proc)
        v1, v2, index = build_images(args.scale)
        source.push_image("bench/app", "v1", v1)
        source.push_image("bench/app", "v2", v2)
        source.push_image("bench/app", "multi", index)
        expected = {"v1": v1.digest, "v2": v2.digest, "multi": index.digest}
        del v1, v2, index
        for rep in range(args.reps):
            for tool in (list(PLAYS) if rep % 2 == 0 else list(reversed(PLAYS))):
                run_tool(tool, rep, source, expected, work, samples)
    finally:
        if source is not None:
            stop(source.proc)
        shutil.rmtree(work, ignore_errors=True)
    report(samples, args.reps)


def run_tool(tool, rep, source, expected, work, samples):
    root = work / f"{tool}-{rep}"
    cache = root / "blob-locations.json"
    dst = Destination(root / "registry")
    multi = Destination(root / "registry-multi")
    try:
        plan = [("first", dst, "mirror/app", "v1"), ("noop", dst, "mirror/app", "v1"),
                ("second_repo", dst, "mirror2/app", "v1"), ("layer_changed", dst, "mirror/app", "v2"),
                ("index", multi, "multi/app", "multi")]
        for phase, target, repository, tag in plan:
            target.mark()
            insecure = [source.host, target.host]
            process_s, task_s, result = run_play(tool, f"{source.host}/bench/app:{tag}",
                                                 f"{target.host}/{repository}:{tag}", insecure, root, cache,
                                                 all_platforms=tag == "multi")
            counts = target.counts()
            got = digest_at(target.registry, repository, tag)
            if got != expected[tag]:
                raise SystemExit(f"rep {rep} {tool} {phase}: destination digest {got} != source {expected[tag]}")
            samples[tool][phase].append({"process_s": process_s, "task_s": task_s, **counts,
                                         "changed": result.get("changed")})
            print(f"rep {rep} {tool:6} {phase:13} task {task_s:6.2f}s process {process_s:6.2f}s "
                  f"uploads {counts['uploads']} mounts {counts['mounts']} manifests {counts['manifest_puts']} "
                  f"sent {counts['bytes_sent'] / MIB:8.2f} MiB", flush=True)
    finally:
        dst.close()
        multi.close()


def report(samples, reps):
    rows, result = [], {"reps": reps, "layers_mib": list(AMD64_LAYERS), "phases": {}}
    for phase in PHASES:
        entry = {}
        for tool in PLAYS:
            runs = samples[tool][phase]
            entry[tool] = {key: median([r[key] for r in runs]) for key in
                           ("task_s", "process_s", "uploads", "mounts", "manifest_puts", "bytes_sent")}
        entry["ratio_task"] = entry["ours"]["task_s"] / entry["skopeo"]["task_s"]
        entry["ratio_process"] = entry["ours"]["process_s"] / entry["skopeo"]["process_s"]
        result["phases"][phase] = entry
        ours, skopeo = entry["ours"], entry["skopeo"]
        rows.append([phase, f"{ours['task_s']:.2f} / {skopeo['task_s']:.2f}", f"{entry['ratio_task']:.2f}x",
                     f"{ours['process_s']:.2f} / {skopeo['process_s']:.2f}", f"{entry['ratio_process']:.2f}x",
                     f"{ours['uploads']:.0f}+{ours['mounts']:.0f}m / {skopeo['uploads']:.0f}+{skopeo['mounts']:.0f}m",
                     f"{ours['manifest_puts']:.0f} / {skopeo['manifest_puts']:.0f}",
                     f"{ours['bytes_sent'] / MIB:.2f} / {skopeo['bytes_sent'] / MIB:.2f}"])
    print_table(f"image mirror: container_image_mirror vs skopeo copy ({sum(AMD64_LAYERS)} MiB, 6 layers; "
                f"median of {reps}; ours / skopeo)",
                ["phase", "task s", "ratio", "process s", "ratio", "blobs sent+mounted", "manifest PUTs",
                 "MiB sent"], rows)
    write_result("image_mirror", result)


if __name__ == "__main__":
    main()
