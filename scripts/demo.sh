#!/usr/bin/env bash
# The main job on the local default (after `localcloud up`): build the image with the sample
# repository pre-built, serve the web app on http://127.0.0.1:8080 with the local GitHub
# stand-in, and launch the sample through it as the user "demo", as a person would.
set -euo pipefail
cd "$(dirname "$0")/.."
export OS_CLIENT_CONFIG_FILE=$PWD/var/localcloud/clouds.yaml ANSIBLE_CONFIG=$PWD/ansible.cfg
BIN=$PWD/.venv/bin

echo "demo: the VMs' security group (Jupyter and SSH from this machine only)"
"$BIN/ansible-playbook" playbooks/security_group.yml >var/demo-security-group.log \
    || { tail -30 var/demo-security-group.log; exit 1; }
echo "demo: building the image (a no-op when it is up to date)"
"$BIN/ansible-playbook" playbooks/build_image.yml >var/demo-build.log \
    || { tail -30 var/demo-build.log; exit 1; }
"$BIN/localcloud" site up
"$BIN/localcloud" site launch --login demo
cat <<TEXT

The app serves http://127.0.0.1:8080 (logs: var/web/serve.log, var/web/worker.log).
Open it in a browser on this machine: "Sign in with GitHub" leads to the local stand-in,
where any login will do; open the registration link above once, then start the prefilled
sample repository (or sign in as demo to see the VM just started). Delete it from the page.

Use the cloud with any OpenStack client:
  export OS_CLIENT_CONFIG_FILE=$OS_CLIENT_CONFIG_FILE OS_CLOUD=localcloud
  .venv/bin/openstack server list
Playbooks without the app:
  .venv/bin/ansible-playbook playbooks/user_vm.yml -e user_id=<id> -e user=demo [-e state=absent]
  (<id>: demo's account id at the GitHub stand-in, the number in its VM's name ssc-r2d-<id>)
  .venv/bin/ansible-playbook playbooks/cull.yml [-e dry_run=true]
Stop the app and the cloud:  make down
TEXT
