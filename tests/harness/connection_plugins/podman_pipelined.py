"""Ansible's way into the test hosts: containers.podman.podman, with pipelining.

Production reaches its hosts over SSH with pipelining on (ansible.cfg): a module is sent on the command's stdin,
one round trip per task. containers.podman.podman cannot pipeline (its exec does not attach stdin), so each task
costs six podman calls instead of one (a temporary directory made, the module copied, made executable, run and
removed), and each task first runs `podman mount` for file transfers it mostly does not make. This connection
runs a module as SSH with pipelining does, in one podman exec, mounts the container only for a file transfer, and
leaves everything else (file transfers, tasks that need a temporary directory, async tasks) to
containers.podman.podman. A podman that cannot run the command at all (a stopped container) makes the host
unreachable, as SSH's exit 255 does. Ansible finds it through ANSIBLE_CONNECTION_PLUGINS (tests/hosts/conftest.py
and .config/molecule/config.yml set it).
"""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection

# How podman exec exits when it could not run the command at all (it then prints "Error: ..."), not the command.
PODMAN_FAILED = (125, 255)

DOCUMENTATION = """
name: podman_pipelined
short_description: Run tasks in a podman container, a module in one podman exec
description:
  - containers.podman.podman with pipelining, for the test hosts only.
author: panzoto-ops
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description: The container's name or ID.
    default: inventory_hostname
    vars:
      - name: ansible_host
      - name: inventory_hostname
  remote_user:
    description: The user commands run as inside the container; the container's default when unset.
    vars:
      - name: ansible_user
  podman_extra_args:
    description: Arguments added to every podman command.
    default: ""
    vars:
      - name: ansible_podman_extra_args
  podman_executable:
    description: The podman command.
    default: podman
    vars:
      - name: ansible_podman_executable
"""


class Connection(PodmanConnection):
    transport = "podman_pipelined"
    has_pipelining = True

    def _connect(self):
        """Connected without `podman mount`: only a file transfer reads the mount point, and it mounts first."""
        self._connected = True
        return self

    def _mount(self) -> None:
        if self._mount_point is None:
            super()._connect()

    def put_file(self, in_path, out_path):
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mount()
        super().fetch_file(in_path, out_path)

    def exec_command(self, cmd, in_data=None, sudoable=False):
        """A pipelined module arrives as in_data: podman exec --interactive hands it to the command's stdin."""
        if in_data is None:
            rc, stdout, stderr = super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        else:
            if not self._connected:
                self._connect()
            user = ["--user", self.user] if self.user else []
            command = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
            rc, stdout, stderr = self._podman(["exec", "--interactive", *user], command, in_data)
        if rc in PODMAN_FAILED and stderr.startswith(b"Error: "):
            # podman itself failed (a stopped container): the host is unreachable, as SSH's exit 255 says in production.
            raise AnsibleConnectionFailure(to_native(stderr.strip(), errors="surrogate_or_strict"))
        return rc, stdout, stderr
