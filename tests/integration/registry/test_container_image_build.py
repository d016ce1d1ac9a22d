"""container_image_build without a Docker daemon: a clear failure naming docker_host and the mirror mode."""

from __future__ import annotations

import socket

SECRET = "BUILD-secret-never-printed-7731"

BUILD_PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    rapids.triton_fil.container_image_build:
      name: 127.0.0.1:5999/proj/triton_fil
      tag: "24.10"
      registry_username: pusher
      registry_password: "{{ password }}"
      auth_kind: anonymous
  tasks:
    - name: unix socket
      rapids.triton_fil.container_image_build:
        path: "{{ context }}"
        docker_host: "{{ unix_host }}"
      ignore_errors: true
    - name: tcp
      rapids.triton_fil.container_image_build:
        path: "{{ context }}"
        docker_host: "{{ tcp_host }}"
      ignore_errors: true
    - name: no context
      rapids.triton_fil.container_image_build:
        path: "{{ context }}/nope"
        docker_host: "{{ unix_host }}"
      ignore_errors: true
    - name: no dockerfile
      rapids.triton_fil.container_image_build:
        path: "{{ context }}"
        dockerfile: missing/Dockerfile
        docker_host: "{{ unix_host }}"
      ignore_errors: true
"""


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_daemon_fails_with_a_clear_message(ansible, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    ev = {"context": str(context), "unix_host": f"unix://{tmp_path}/no-docker.sock",
          "tcp_host": f"tcp://127.0.0.1:{closed_port()}", "password": SECRET}
    run = ansible(BUILD_PLAY, extra_vars=ev, verbosity=3, callback="default")
    out = run.stdout + run.stderr
    assert run.rc == 0 and out.count("...ignoring") == 4, out[-3000:]
    for host in (ev["unix_host"], ev["tcp_host"]):
        assert f"no Docker daemon is reachable at docker_host={host}" in out
    assert out.count("gcr_image_mode: mirror") >= 2 and "rapids.triton_fil.container_image_mirror module" in out
    assert "is not a directory" in out and "build context" in out
    assert "dockerfile 'missing/Dockerfile' does not exist" in out
    assert SECRET not in out, "registry_password is no_log"
