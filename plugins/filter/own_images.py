"""Filter `ssc.repo2docker.own_images`: the images this site built, newest first."""

DOCUMENTATION = r"""
name: own_images
short_description: The images this site built in this project, newest first
version_added: 0.1.0
description:
  - From a list of Glance images (as C(openstack.cloud.image_info) returns them), keeps those
    built by C(playbooks/build_image.yml) with the name prefix I(prefix) (their
    C(ssc_r2d_prefix) property) in this project, and sorts them newest first (by
    C(created_at)).
  - In this project means Glance's C(private) visibility, which Nova gives a server's snapshot
    (Glance API reference, "Image visibility"; Nova's createImage). An image another project
    made C(public) or C(shared) with this project is never one of them, whatever its
    properties say, so that nobody else's image is booted for researchers or pruned.
  - The roles use it to choose the image user VMs boot (C(ssc.repo2docker.user_vm)) and the
    images C(playbooks/build_image.yml) keeps.
positional: prefix
options:
  _input:
    description: Glance images, each a dict with C(visibility), C(created_at) and
      C(properties) (or the properties at the top level, as openstacksdk flattens them).
    type: list
    elements: dict
    required: true
  prefix:
    description: The image name prefix the build recorded (C(ssc_image_name_prefix)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Take the newest active image built with the prefix
  ansible.builtin.set_fact:
    image: >-
      {{ listed.images | ssc.repo2docker.own_images('ssc-repo2docker')
      | selectattr('status', 'equalto', 'active') | first }}
"""

RETURN = r"""
_value:
  description: The images kept, newest first.
  type: list
  elements: dict
"""


def _prefix(image: dict) -> str | None:
    properties = image.get("properties") or {}
    return properties.get("ssc_r2d_prefix", image.get("ssc_r2d_prefix"))


def own_images(images: list[dict], prefix: str) -> list[dict]:
    """`images` that are this project's (``visibility == "private"``) and carry
    ``ssc_r2d_prefix == prefix``, sorted by ``created_at`` (ISO 8601 strings), newest first."""
    kept = [image for image in images or []
            if image.get("visibility") == "private" and _prefix(image) == prefix]
    return sorted(kept, key=lambda image: image.get("created_at") or "", reverse=True)


class FilterModule:
    def filters(self):
        return {"own_images": own_images}
