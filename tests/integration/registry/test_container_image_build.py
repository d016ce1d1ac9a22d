"""container_image_build without a Docker daemon: a clear failure naming docker_host and the mirror mode."""

from __future__ import annotations

import socket

BUILD_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: build
      rapids.triton_fil.container_image_build:
        path: "{{ context }}"
        name: 127.0.0.1:5999/proj/triton_fil
        tag: "24.10"
        docker_host: "{{ docker_host }}"
        registry_username: pusher
        registry_password: "{{ password }}"
        auth_kind: anonymous
"""


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_daemon_fails_with_a_clear_message(ansible, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    secret = "BUILD-secret-never-printed-7731"
    for docker_host in (f"unix://{tmp_path}/no-docker.sock", f"tcp://127.0.0.1:{closed_port()}"):
        run = ansible(BUILD_PLAY, extra_vars={"context": str(context), "docker_host": docker_host, "password": secret})
        assert run.rc != 0
        msg = run.result("build")["msg"]
        assert f"no Docker daemon is reachable at docker_host={docker_host}" in msg
        assert "gcr_image_mode: mirror" in msg and "container_image_mirror" in msg
        assert secret not in run.stdout + run.stderr

    verbose = ansible(BUILD_PLAY, extra_vars={"context": str(context), "docker_host": f"unix://{tmp_path}/x.sock",
                                              "password": secret}, check=True, verbosity=3, callback="default")
    assert verbose.rc != 0 and "docker_host=" in verbose.stdout
    assert secret not in verbose.stdout + verbose.stderr


def test_missing_context_names_the_option(ansible, tmp_path):
    run = ansible(BUILD_PLAY, extra_vars={"context": str(tmp_path / "nope"), "docker_host": "unix:///x.sock",
                                          "password": "long-enough-secret"})
    assert run.rc != 0 and "path '" in run.result("build")["msg"] and "build context" in run.result("build")["msg"]
    (tmp_path / "ctx").mkdir()
    run = ansible(BUILD_PLAY, extra_vars={"context": str(tmp_path / "ctx"), "docker_host": "unix:///x.sock",
                                          "password": "long-enough-secret"})
    assert run.rc != 0 and "dockerfile 'Dockerfile' does not exist" in run.result("build")["msg"]
