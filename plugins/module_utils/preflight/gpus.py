# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Which GPU attaches to which Compute Engine machine type, and how many of them.

Two kinds of machines carry GPUs (Compute Engine, "GPU machine types",
https://cloud.google.com/compute/docs/gpus: "For the A and G series accelerator-optimized machine types,
the specified GPU model automatically attaches to the instance. For the N1 general-purpose machine types,
you can attach the GPU models specified"; N1 shared-core f1-micro and g1-small take none; "GPUs are not
compatible with other machine types").
"""

from __future__ import annotations

import re

# Accelerator-optimized machine types: each has one GPU model and a fixed count. Source: Google's own
# table in GoogleCloudPlatform/cluster-toolkit modules/internal/gpu-definition/main.tf
# (commit 147e356daa102ed18352faf7ef9f1075fa01e379, `accelerator_machines`), which matches the machine
# type tables of https://cloud.google.com/compute/docs/gpus (A2 Standard/Ultra, A3 High/Mega/Ultra, A4, G2).
ACCELERATOR_OPTIMIZED = {
    "a2-highgpu-1g": ("nvidia-tesla-a100", 1), "a2-highgpu-2g": ("nvidia-tesla-a100", 2),
    "a2-highgpu-4g": ("nvidia-tesla-a100", 4), "a2-highgpu-8g": ("nvidia-tesla-a100", 8),
    "a2-megagpu-16g": ("nvidia-tesla-a100", 16),
    "a2-ultragpu-1g": ("nvidia-a100-80gb", 1), "a2-ultragpu-2g": ("nvidia-a100-80gb", 2),
    "a2-ultragpu-4g": ("nvidia-a100-80gb", 4), "a2-ultragpu-8g": ("nvidia-a100-80gb", 8),
    "a3-highgpu-1g": ("nvidia-h100-80gb", 1), "a3-highgpu-2g": ("nvidia-h100-80gb", 2),
    "a3-highgpu-4g": ("nvidia-h100-80gb", 4), "a3-highgpu-8g": ("nvidia-h100-80gb", 8),
    "a3-megagpu-8g": ("nvidia-h100-mega-80gb", 8),
    "a3-ultragpu-8g": ("nvidia-h200-141gb", 8),
    "a4-highgpu-8g": ("nvidia-b200", 8), "a4-highgpu-8g-lowmem": ("nvidia-b200", 8),
    "g2-standard-4": ("nvidia-l4", 1), "g2-standard-8": ("nvidia-l4", 1), "g2-standard-12": ("nvidia-l4", 1),
    "g2-standard-16": ("nvidia-l4", 1), "g2-standard-24": ("nvidia-l4", 2), "g2-standard-32": ("nvidia-l4", 1),
    "g2-standard-48": ("nvidia-l4", 4), "g2-standard-96": ("nvidia-l4", 8),
}

# GPUs attached to N1 machines: GPU count -> the most vCPUs an N1 machine may have with that many.
# Source: https://cloud.google.com/compute/docs/gpus (the N1 tables of T4, P4, V100, P100), as
# skypilot-org/skypilot records them in sky/clouds/service_catalog/gcp_catalog.py
# (`_NUM_ACC_TO_MAX_CPU_AND_MEMORY`, commit ba38eea6a826de621b0b3d9d556b213f7048502f); P100 x4 allows
# 64 vCPUs in some zones and 96 in others: the larger bound is used, the zone decides the rest.
N1_GPUS = {
    "nvidia-tesla-t4": {1: 48, 2: 48, 4: 96},
    "nvidia-tesla-p4": {1: 24, 2: 48, 4: 96},
    "nvidia-tesla-v100": {1: 12, 2: 24, 4: 48, 8: 96},
    "nvidia-tesla-p100": {1: 16, 2: 32, 4: 96},
}

# Every GPU type a pool can ask for (the accelerator names of the two tables above).
GPU_TYPES = frozenset(N1_GPUS) | frozenset(gpu for gpu, _count in ACCELERATOR_OPTIMIZED.values())

# The machine series each accelerator-optimized GPU comes with, for the fix in messages.
SERIES_OF = {}
for _machine, (_gpu, _count) in ACCELERATOR_OPTIMIZED.items():
    SERIES_OF.setdefault(_gpu, set()).add(_machine.split("-", 1)[0].upper())

# Regional quota metric of each GPU type: the names of compute.v1's Quota.metric enum (discovery
# document). GPU types without an entry there (H100 80GB, H100 Mega, H200, B200) have no regional
# GPU quota metric in compute.v1 and are not checked.
QUOTA_METRICS = {
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS", "nvidia-tesla-p4": "NVIDIA_P4_GPUS",
    "nvidia-tesla-v100": "NVIDIA_V100_GPUS", "nvidia-tesla-p100": "NVIDIA_P100_GPUS",
    "nvidia-l4": "NVIDIA_L4_GPUS", "nvidia-tesla-a100": "NVIDIA_A100_GPUS", "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
}

N1_MACHINE_RE = re.compile(r"^(?:n1-(?:standard|highmem|highcpu)-(?P<vcpus>\d+)|(?:n1-)?custom-(?P<custom>\d+)-\d+(?:-ext)?)$")
N1_SHARED_CORE = ("f1-micro", "g1-small")


def n1_vcpus(machine_type):
    """vCPUs of an N1 machine type (predefined or custom), or None when it is not an N1 type."""
    found = N1_MACHINE_RE.match(machine_type or "")
    if not found:
        return None
    return int(found.group("vcpus") or found.group("custom"))


def check_gpu_machine(gpu, count, machine_type):
    """Problems as (variable, message) for a GPU pool of `count` x `gpu` on `machine_type`."""
    if gpu not in GPU_TYPES:
        return [("gke_cluster_gpu_accelerator_type",
                 f"{gpu!r} is not a GPU type a GKE pool can use — use one of: {', '.join(sorted(GPU_TYPES))}")]
    if machine_type in ACCELERATOR_OPTIMIZED:
        fixed_gpu, fixed_count = ACCELERATOR_OPTIMIZED[machine_type]
        if fixed_gpu != gpu:
            return [("gke_cluster_gpu_machine_type",
                     f"{machine_type!r} comes with {fixed_gpu}, not {gpu} — pick a machine type for {gpu} "
                     f"({_machines_for(gpu)}) or set gke_cluster_gpu_accelerator_type: {fixed_gpu}")]
        if count != fixed_count:
            return [("gke_cluster_gpu_accelerator_count",
                     f"{count} does not match {machine_type!r}, which has exactly {fixed_count} x {gpu} — "
                     f"set gke_cluster_gpu_accelerator_count: {fixed_count}, or pick the {gpu} machine type with "
                     f"{count} GPU(s)")]
        return []
    if gpu not in N1_GPUS:
        return [("gke_cluster_gpu_machine_type",
                 f"{machine_type!r} cannot carry {gpu}: it comes only with the "
                 f"{'/'.join(sorted(SERIES_OF.get(gpu, ())))} machine types ({_machines_for(gpu)})")]
    vcpus = n1_vcpus(machine_type)
    if vcpus is None:
        return [("gke_cluster_gpu_machine_type",
                 f"{machine_type!r} cannot carry {gpu}: {gpu} attaches to N1 machine types only "
                 f"(n1-standard-*, n1-highmem-*, n1-highcpu-*, custom N1; not {', '.join(N1_SHARED_CORE)}) — "
                 "use e.g. n1-standard-4")]
    allowed = N1_GPUS[gpu]
    if count not in allowed:
        return [("gke_cluster_gpu_accelerator_count",
                 f"{count} x {gpu} cannot attach to a machine — allowed counts: "
                 f"{', '.join(map(str, sorted(allowed)))}")]
    if vcpus > allowed[count]:
        fits = [c for c in sorted(allowed) if allowed[c] >= vcpus]
        hint = f"use {fits[0]} GPUs or a machine with at most {allowed[count]} vCPUs" if fits else \
            f"use a machine with at most {allowed[count]} vCPUs"
        return [("gke_cluster_gpu_machine_type",
                 f"{machine_type!r} has {vcpus} vCPUs; with {count} x {gpu} an N1 machine may have at most "
                 f"{allowed[count]} — {hint}")]
    return []


def _machines_for(gpu):
    machines = [m for m, (g, _c) in ACCELERATOR_OPTIMIZED.items() if g == gpu]
    return ", ".join(machines) if machines else "n1-standard-*"
