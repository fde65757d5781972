# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)
"""The controller↔VM contract: where a user VM's launcher and the controller meet.

This file is the one place these names are written. Who reads them:

- the role ``repo2docker_image`` (at image build time), through the lookup
  ``ssc.repo2docker.launcher_contract`` in its ``vars/main.yml``: it installs the launcher at
  ``LAUNCHER`` and the unit ``LAUNCHER_UNIT``, whose ``ExecStart`` hands the launcher the three
  paths below as arguments (the launcher script itself names none of them), and whose
  ``ConditionPathExists`` waits for ``LAUNCH_SETTINGS``;
- the module ``ssc.repo2docker.user_server`` (at VM creation), which imports this file: its
  cloud-init user-data writes ``LAUNCH_SETTINGS`` and ``JUPYTER_ENV``, then enables and starts
  ``LAUNCHER_UNIT``;
- the role ``user_vm`` (when Jupyter does not come up), through the same lookup in its
  ``vars/main.yml``: it reads ``LAUNCHER_STATE`` and the unit's journal over SSH;
- the module ``ssc.repo2docker.launch_progress``, which imports this file: it reads the
  launcher's records, lines ``CONSOLE_PREFIX`` + JSON on the VM's console (Nova's
  os-getConsoleOutput); the launcher writes them with the same prefix (a unit test holds
  the two in step);
- molecule's ``verify.yml`` and the tests on the local cloud.

A snapshot carries the unit as the role wrote it: an image built with other values serves
only VMs created with those values. Standard library only, nothing but constants, so that
Ansible can ship it with a module and anything can import it.
"""

from __future__ import annotations

# The launcher script (roles/repo2docker_image/files/repo2docker-launcher), installed here.
LAUNCHER = "/usr/local/bin/repo2docker-launcher"
# Its systemd unit: installed disabled in the image, enabled by a user VM's cloud-init.
LAUNCHER_UNIT = "repo2docker-launcher.service"
# What to serve, JSON {"repo": URL, "commit": 40 hex digits, "port": int}; mode 0600.
LAUNCH_SETTINGS = "/etc/repo2docker-launcher/launch.json"
# The Jupyter token, one line JUPYTER_TOKEN=<token> (docker run --env-file); mode 0600.
JUPYTER_ENV = "/etc/repo2docker-launcher/jupyter.env"
# How the launch goes, JSON {"phase", "time", ...}, written by the launcher; no secrets.
LAUNCHER_STATE = "/var/lib/repo2docker-launcher/state.json"

# What starts each of the launcher's records on the VM's console, followed by one JSON object
# {"seq": 1, 2, ..., "phase": fetching|building|starting|ready|failed, "text": one line}.
CONSOLE_PREFIX = "ssc-r2d: "

# Every name above by its lowercase name: what the lookup ssc.repo2docker.launcher_contract
# answers (e.g. lookup('ssc.repo2docker.launcher_contract', 'launch_settings')).
CONTRACT = {
    "launcher": LAUNCHER,
    "launcher_unit": LAUNCHER_UNIT,
    "launch_settings": LAUNCH_SETTINGS,
    "jupyter_env": JUPYTER_ENV,
    "launcher_state": LAUNCHER_STATE,
}
