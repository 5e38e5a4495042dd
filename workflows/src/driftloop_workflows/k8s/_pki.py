"""The control plane's credentials, made with openssl at each start: a CA, the API server's
serving certificate (127.0.0.1 and the in-cluster names), the Argo server's, one client
certificate in ``system:masters`` that every controller and the tests use, and the
service-account signing key. Nothing here is reused across starts or kept in git."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "7"


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def argo_server_cert(self) -> Path:
        return self.directory / "argo-server.crt"

    @property
    def argo_server_key(self) -> Path:
        return self.directory / "argo-server.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {done.stderr.strip()}")


def _signed(d: Path, name: str, subject: str, extensions: str) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", DAYS, "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


def make_pki(directory: Path) -> Pki:
    """A fresh CA and the certificates and keys signed by it, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    d = directory
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", DAYS, "-subj", "/CN=driftloop-k8s-ca",
        cwd=d,
    )  # fmt: skip
    _signed(
        d,
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:10.96.0.1\nextendedKeyUsage=serverAuth\n",
    )
    _signed(
        d,
        "argo-server",
        "/CN=argo-server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:argo-server.argo,DNS:argo-server.argo.svc"
        "\nextendedKeyUsage=serverAuth\n",
    )
    _signed(d, "admin", "/O=system:masters/CN=driftloop-admin", "extendedKeyUsage=clientAuth\n")
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    return Pki(directory)


def kubeconfig(pki: Pki, server: str) -> str:
    """A kubeconfig for ``server`` with the client certificate (paths, not inline data)."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: driftloop
  cluster:
    server: {server}
    certificate-authority: {pki.ca}
users:
- name: driftloop-admin
  user:
    client-certificate: {pki.client_cert}
    client-key: {pki.client_key}
contexts:
- name: driftloop
  context:
    cluster: driftloop
    user: driftloop-admin
current-context: driftloop
"""
