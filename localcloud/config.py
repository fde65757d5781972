"""Settings of one local cloud: where its state lives, where it listens, its networks."""

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

DOCKER_LABEL = "io.localcloud"  # every container, volume, image and network it makes carries it


@dataclass(frozen=True)
class Config:
    var_dir: Path = Path("var/localcloud")
    host: str = "127.0.0.1"
    port: int = 8770
    private_network: str = "localcloud-private"
    private_cidr: str = "10.89.0.0/24"
    public_network: str = "localcloud-public"
    public_cidr: str = "10.89.1.0/24"
    region: str = "RegionOne"
    project: str = "demo"
    username: str = "demo"
    password: str = field(default="", repr=False)
    quotas: dict = field(default_factory=dict)
    # Timing copied from the real services (docs in localcloud/README.md):
    # seconds a boot volume with delete_on_termination stays `deleting` after its server is
    # gone (Nova asks Cinder to delete it; Cinder's driver finishes later)
    nova_volume_delete_delay: float = 2.0
    # seconds before a floating IP associated through Neutron shows in Nova's `addresses`
    # (Neutron notifies Nova, which then refreshes its network info cache)
    nova_floating_ip_delay: float = 2.0

    @property
    def gateway(self) -> str:
        """The host's address on the servers' network: servers reach the host here."""
        return str(next(ipaddress.ip_network(self.private_cidr).hosts()))

    @property
    def public_gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.public_cidr).hosts()))

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def git_base_url(self) -> str:
        """Git hosting, reachable from the host and from inside servers alike."""
        return f"http://{self.gateway}:{self.port}/git"

    @property
    def github_base_url(self) -> str:
        return f"{self.endpoint}/github"

    @property
    def state_dir(self) -> Path:
        return self.var_dir / "state"


def from_environment(var_dir: Path | None = None) -> Config:
    """Config with overrides from LOCALCLOUD_* environment variables."""
    values = {}
    if var_dir is not None:
        values["var_dir"] = Path(var_dir)
    elif "LOCALCLOUD_VAR_DIR" in os.environ:
        values["var_dir"] = Path(os.environ["LOCALCLOUD_VAR_DIR"])
    if "LOCALCLOUD_PORT" in os.environ:
        values["port"] = int(os.environ["LOCALCLOUD_PORT"])
    for name in ("nova_volume_delete_delay", "nova_floating_ip_delay"):
        if f"LOCALCLOUD_{name.upper()}" in os.environ:
            values[name] = float(os.environ[f"LOCALCLOUD_{name.upper()}"])
    return Config(**values)
