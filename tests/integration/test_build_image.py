"""playbooks/build_image.yml end to end on the local cloud, with real repo2docker."""

import importlib.machinery
import importlib.util
import json
import subprocess

import pytest

from tests.helpers import BIN, LAUNCHER_CONTRACT, ROOT, new_key, ssh

pytestmark = pytest.mark.cloud
PLAYBOOK = ROOT / "playbooks" / "build_image.yml"
LAUNCHER = ROOT / "roles" / "repo2docker_image" / "files" / "repo2docker-launcher"
SAMPLE = "http://10.89.0.1:8770/git/ssc/sample-notebook.git"


def launcher():
    """The launcher script as a module: its image_name is THE naming function."""
    loader = importlib.machinery.SourceFileLoader("repo2docker_launcher", str(LAUNCHER))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def build(cloud, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ansible-playbook"), str(PLAYBOOK), *extra],
                          env=cloud.env, cwd=ROOT, capture_output=True, text=True,
                          timeout=3600)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {ok: n, changed: n, ...}}."""
    hosts = {}
    for line in output.split("PLAY RECAP")[-1].splitlines()[1:]:
        if ":" not in line:
            continue
        host, _, counts = line.partition(":")
        hosts[host.strip()] = {k: int(v) for k, v in
                               (pair.split("=") for pair in counts.split())}
    return hosts


def nothing_left(conn) -> None:
    assert [s.name for s in conn.compute.servers()] == []
    assert [v.id for v in conn.block_storage.volumes()] == []
    assert [k.name for k in conn.compute.keypairs() if "builder" in k.name] == []


@pytest.fixture
def built(prebuilt_image):
    return prebuilt_image


def test_build_makes_an_active_image_describing_what_it_prebuilt(cloud, built):
    _, image = built
    assert image.status == "active"
    url, _, commit = image.properties["ssc_r2d_prebuilt_0"].partition("@")
    assert url == SAMPLE.removesuffix(".git")  # recorded in its canonical spelling
    heads = subprocess.run(["git", "ls-remote", "--", SAMPLE, "HEAD"], capture_output=True,
                           text=True, check=True).stdout
    assert heads.split()[0] == commit
    assert image.properties["ssc_r2d_prebuilt_count"] == "1"
    assert image.name.startswith("ssc-repo2docker-")
    nothing_left(cloud.connect())


def test_a_server_from_the_image_has_the_prebuilt_repository(cloud, built, tmp_path):
    _, image = built
    url, _, commit = image.properties["ssc_r2d_prebuilt_0"].partition("@")
    expected = launcher().image_name(url, commit)
    key = new_key(tmp_path)
    conn = cloud.connect()
    conn.compute.create_keypair(name="lc-image-check", public_key=key.with_suffix(".pub")
                                .read_text())
    server = conn.create_server("lc-image-check", image=image.id, flavor="ssc.small",
                                key_name="lc-image-check", network="private", auto_ip=False,
                                security_groups=["ssc-repo2docker"],  # SSH from here
                                wait=True, timeout=600)
    try:
        address = server.addresses["private"][0]["addr"]
        program, unit = LAUNCHER_CONTRACT["launcher"], LAUNCHER_CONTRACT["launcher_unit"]
        assert ssh(address, key, f"{program} image-name {url} {commit}").strip() == expected
        tags = ssh(address, key, "sudo docker image ls --format '{{.Repository}}:{{.Tag}}'")
        assert expected in tags.split()
        assert ssh(address, key, f"systemctl is-enabled {unit}", check=False).strip() \
            == "disabled"
        assert ssh(address, key, "cloud-init status --wait").strip().endswith("done")
    finally:
        conn.delete_server(server.id, wait=True, timeout=300)
        conn.compute.delete_keypair("lc-image-check")


def test_the_same_inputs_again_build_nothing(cloud, built):
    images_before = sorted(i.id for i in cloud.connect().image.images())
    result = build(cloud)
    assert result.returncode == 0, result.stdout[-5000:]
    hosts = recap(result.stdout)
    assert list(hosts) == ["localhost"], "a builder was started"
    assert hosts["localhost"]["changed"] == 0
    assert sorted(i.id for i in cloud.connect().image.images()) == images_before


def test_a_repository_that_cannot_be_fetched_fails_clearly_and_leaves_nothing(cloud):
    missing = "http://10.89.0.1:8770/git/nobody/missing.git"
    result = build(cloud, "-e", json.dumps({"ssc_image_prebuild": [{"url": missing}]}))
    assert result.returncode != 0
    assert missing in result.stdout
    nothing_left(cloud.connect())


def test_a_failed_build_on_the_builder_leaves_nothing(cloud, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Dockerfile").write_text("FROM localcloud/notebook-base:latest\nRUN false\n")
    url = cloud.localcloud("publish", "lc-tests/broken", str(broken)).strip()
    images_before = sorted(i.id for i in cloud.connect().image.images())
    result = build(cloud, "-e", json.dumps({"ssc_image_prebuild": [{"url": url}]}))
    assert result.returncode != 0
    assert "The image build failed on the builder" in result.stdout
    nothing_left(cloud.connect())
    assert sorted(i.id for i in cloud.connect().image.images()) == images_before
