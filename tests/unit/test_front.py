"""localcloud/front.py without nginx running: the local CA is made once and kept, server
certificates are kept while they still fit and made again when the names change, and the
shipped nginx site renders for loopback or says what it no longer finds. openssl only."""

from __future__ import annotations

import subprocess

import pytest

from localcloud.front import SITE_CONF, Authority, FrontError, render


def names_of(cert) -> str:
    return subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True,
                          check=True).stdout


def test_the_authority_is_made_once_and_its_certificates_kept(tmp_path):
    authority = Authority(tmp_path / "ca")
    ca = authority.ensure()
    made = ca.read_bytes()
    assert Authority(tmp_path / "ca").ensure().read_bytes() == made  # a second run keeps it
    assert oct(authority.directory.stat().st_mode & 0o777) == "0o700"

    cert, _key = authority.issue(["*.vms.localhost"], tmp_path / "certs", "vms")
    assert "DNS:*.vms.localhost" in names_of(cert)
    subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)], check=True,
                   capture_output=True)
    first = cert.read_bytes()
    assert authority.issue(["*.vms.localhost"], tmp_path / "certs", "vms")[0].read_bytes() == (
        first)
    again = authority.issue(["*.other.localhost"], tmp_path / "certs", "vms")[0]
    assert again.read_bytes() != first and "DNS:*.other.localhost" in names_of(again)


def test_the_shipped_site_renders_for_loopback(tmp_path):
    certificates = {"app": (tmp_path / "app.pem", tmp_path / "app.key"),
                    "vms": (tmp_path / "vms.pem", tmp_path / "vms.key")}
    text = render(SITE_CONF.read_text(), "ssc.localhost", "vms.localhost", 8443, 8080,
                  certificates, tmp_path / "logs")
    assert "listen 127.0.0.1:8443 ssl http2;" in text and "listen 80" not in text
    assert r'"~^(?<ssc_vm>[a-z0-9-]+)\.vms\.localhost$"' in text
    assert "return 302 https://ssc.localhost:8443/vm/$ssc_vm;" in text
    assert f"ssl_certificate     {tmp_path / 'vms.pem'};" in text
    assert "proxy_pass http://$ssc_upstream:8888;" in text  # the VM's Jupyter port as shipped
    with pytest.raises(FrontError, match="no 'listen 443 ssl http2;'"):
        render(SITE_CONF.read_text().replace("listen 443 ssl http2;", "listen 443 ssl;"),
               "ssc.localhost", "vms.localhost", 8443, 8080, certificates, tmp_path)
