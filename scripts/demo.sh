#!/usr/bin/env bash
# The main job on the local default (after `localcloud up`): build the image with the sample
# repository pre-built, serve the web app over HTTPS at https://ssc.localhost:8443/ (nginx with
# deploy/nginx-ssc-web.conf, certificates from the local CA in var/ca; the VMs' Jupyter at
# https://<vm>.vms.localhost:8443/) with the local GitHub stand-in, and launch the sample
# through it as the user "demo", as a person would.
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
CA=$PWD/var/ca/ca.pem
cat <<TEXT

Open https://ssc.localhost:8443/ in a browser on this machine (Chromium and curl resolve
*.localhost to this machine). Each VM's Jupyter is at https://<vm name>.vms.localhost:8443/,
for its owner only, through the site's proxy (nginx: var/web/front; the app's logs:
var/web/serve.log, var/web/worker.log; the app itself listens on 127.0.0.1:8080).
"Sign in with GitHub" leads to the local stand-in, where any login will do; open the
registration link above once, then start the prefilled sample repository (or sign in as
demo to see the VM just started), open Jupyter, delete the VM from the page.

The certificates come from this machine's own certificate authority, $CA
(made once, kept across runs). Until your browser trusts it, it says the connection is not
private (NET::ERR_CERT_AUTHORITY_INVALID) for ssc.localhost and for each VM's name. Trust it:
  curl:      curl --cacert $CA https://ssc.localhost:8443/
  Chromium:  certutil -d sql:\$HOME/.pki/nssdb -A -t C,, -n "ssc demo CA" -i $CA
             (apt-get install libnss3-tools; an empty database first: certutil -N -d
             sql:\$HOME/.pki/nssdb --empty-password), then restart Chromium
  Firefox:   Settings, Privacy & Security, Certificates, View Certificates, Authorities, Import

Use the cloud with any OpenStack client:
  export OS_CLIENT_CONFIG_FILE=$OS_CLIENT_CONFIG_FILE OS_CLOUD=localcloud
  .venv/bin/openstack server list
Playbooks without the app:
  .venv/bin/ansible-playbook playbooks/user_vm.yml -e user_id=<id> -e user=demo [-e state=absent]
  (<id>: demo's account id at the GitHub stand-in, the number in its VM's name ssc-r2d-<id>)
  .venv/bin/ansible-playbook playbooks/cull.yml [-e dry_run=true]
Stop nginx, the app and the cloud:  make down
TEXT
