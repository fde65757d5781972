#!/usr/bin/env bash
# The main job on the local default: build the image (the sample repository pre-built) on the
# local cloud, give the user "demo" a VM serving the sample, print its Jupyter URL.
set -euo pipefail
cd "$(dirname "$0")/.."
export OS_CLIENT_CONFIG_FILE=$PWD/var/localcloud/clouds.yaml ANSIBLE_CONFIG=$PWD/ansible.cfg
BIN=$PWD/.venv/bin
SAMPLE=http://10.89.0.1:8770/git/ssc/sample-notebook.git

echo "demo: building the image (a no-op when it is up to date)"
"$BIN/ansible-playbook" playbooks/build_image.yml >var/demo-build.log \
    || { tail -30 var/demo-build.log; exit 1; }
echo "demo: starting the user demo's VM for $SAMPLE"
ANSIBLE_STDOUT_CALLBACK=ansible.posix.json ANSIBLE_SHOW_CUSTOM_STATS=true "$BIN/ansible-playbook" playbooks/user_vm.yml \
    -e user=demo -e "repo=$SAMPLE" >var/demo-launch.json \
    || { "$BIN/python" -c 'import json,sys; r=json.load(open(sys.argv[1]));
print(*[h.get("msg") for p in r["plays"] for t in p["tasks"] for h in t["hosts"].values() if h.get("failed")])' var/demo-launch.json; exit 1; }
"$BIN/python" - var/demo-launch.json <<'PY'
import json, os, sys
vm = json.load(open(sys.argv[1]))["global_custom_stats"]["ssc_vm"]
print(f"""
Jupyter for the user demo is ready (cache hit: {vm["cache_hit"]}):
  {vm["url"]}
VM {vm["name"]} at {vm["ip"]}, image {vm["image"]}, expires {vm["expires"]}.

Use the cloud with any OpenStack client:
  export OS_CLIENT_CONFIG_FILE={os.getcwd()}/var/localcloud/clouds.yaml OS_CLOUD=localcloud
  .venv/bin/openstack server list
Delete the VM:   .venv/bin/ansible-playbook playbooks/user_vm.yml -e user=demo -e state=absent
Cull old VMs:    .venv/bin/ansible-playbook playbooks/cull.yml [-e dry_run=true]
Stop the cloud:  .venv/bin/localcloud down""")
PY
