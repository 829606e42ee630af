"""tools/local_aws.py stops only the server it started, however long ago that server ended."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import local_aws
import pytest


def test_a_server_is_stopped_through_its_own_process(tmp_path) -> None:
    server = local_aws.start_server(log_path=tmp_path / "moto.log", die_with_parent=True)
    local_aws.stop_server(server)
    assert server.process.returncode is not None  # ended (moto exits 0 on SIGTERM) and reaped by its Popen
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=2)


def test_a_server_that_already_ended_is_not_signalled_again(tmp_path, monkeypatch) -> None:
    # Once reaped, its pid may be any new process's (a long test run wraps pid_max): no signal may go to it.
    server = local_aws.start_server(log_path=tmp_path / "moto.log", die_with_parent=True)
    server.process.kill()
    server.process.wait()
    sent = []
    kill = os.kill
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)) or kill(pid, sig))
    local_aws.stop_server(server)
    assert sent == []
