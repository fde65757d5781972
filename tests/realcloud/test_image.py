"""The realcloud image's recipe, without Docker: what goes into the container at setup."""

import io
import json
import re
import tarfile

from localcloud.realcloud import image


def rendered() -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(image._rendered_files())) as tar:
        return {member.name: (member, tar.extractfile(member).read()) for member in tar}


def test_every_placeholder_is_filled_and_secrets_are_fresh():
    first, second = rendered(), rendered()
    files = {str(path.relative_to(image.FILES)) for path in image._files()}
    assert set(first) == files | {image.CREDENTIALS.lstrip("/")}
    for name, (_, data) in first.items():
        assert not re.search(rb"@[A-Z_]+@", data), name
    credentials = json.loads(first[image.CREDENTIALS.lstrip("/")][1])
    assert credentials["auth_url"] == f"http://{image.ADDRESS}:5000/v3"
    assert credentials["admin"]["password"] != credentials["demo"]["password"]
    again = json.loads(second[image.CREDENTIALS.lstrip("/")][1])
    assert again["admin"]["password"] != credentials["admin"]["password"]


def test_modes_secret_files_and_scripts():
    members = {name: member for name, (member, _) in rendered().items()}
    assert members[image.CREDENTIALS.lstrip("/")].mode == 0o600
    assert members[image.SETUP.lstrip("/")].mode == 0o755
    assert members["etc/nova/nova.conf"].mode == 0o644  # realcloud-setup makes it root:nova 0640


def test_recipe_hash_follows_the_files(tmp_path, monkeypatch):
    before = image.recipe_hash()
    assert image.recipe_hash() == before
    copy = tmp_path / "files"
    for path in image._files():
        target = copy / path.relative_to(image.FILES)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    monkeypatch.setattr(image, "FILES", copy)
    assert image.recipe_hash() == before
    (copy / "etc/nova/nova-compute.conf").write_text("[DEFAULT]\nhost = another\n")
    assert image.recipe_hash() != before
