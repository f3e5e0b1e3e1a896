"""Certificates and keys for the local control plane.

One CA signs the kube-apiserver's serving certificate and the client
certificates of the admin and of each component; one RSA key signs and
verifies ServiceAccount tokens. Called by `cluster.py` once per state directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from localenv.sandbox import GATEWAY_IP, KUBERNETES_SERVICE_IP

_VALIDITY = dt.timedelta(days=365)
FRONT_PROXY_NAME = "front-proxy-client"


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    kwok: CertPair
    service_account_key: Path  # private key; the apiserver derives the public half
    kube_proxy: CertPair
    coredns: CertPair
    # The API server's client identity towards aggregated APIs (metrics-server): it
    # proxies a request there with the user in X-Remote-* headers, which they trust only
    # from a certificate of this CA named `front-proxy-client`.
    front_proxy: CertPair


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _issue(
    *,
    directory: Path,
    stem: str,
    subject: x509.Name,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    server: bool,
) -> CertPair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.DNSName("kubernetes.default.svc.cluster.local"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    # Inside the network sandbox: the address pods reach the API server
                    # at, and the `kubernetes` Service's ClusterIP.
                    x509.IPAddress(ipaddress.ip_address(GATEWAY_IP)),
                    x509.IPAddress(ipaddress.ip_address(KUBERNETES_SERVICE_IP)),
                ]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = CertPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pair.key, key)
    return pair


def _existing(directory: Path) -> Pki | None:
    def pair(stem: str) -> CertPair:
        return CertPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")

    pki = Pki(
        ca=pair("ca"),
        apiserver=pair("apiserver"),
        admin=pair("admin"),
        controller_manager=pair("controller-manager"),
        scheduler=pair("scheduler"),
        kwok=pair("kwok"),
        service_account_key=directory / "service-account.key",
        kube_proxy=pair("kube-proxy"),
        coredns=pair("coredns"),
        front_proxy=pair("front-proxy-client"),
    )
    pairs = (
        pki.ca,
        pki.apiserver,
        pki.admin,
        pki.controller_manager,
        pki.scheduler,
        pki.kwok,
        pki.kube_proxy,
        pki.coredns,
        pki.front_proxy,
    )
    files = [p for c in pairs for p in (c.cert, c.key)] + [pki.service_account_key]
    return pki if all(f.exists() for f in files) else None


def create_pki(directory: Path) -> Pki:
    """Every certificate and key the control plane needs; kept when the state directory
    already has them, so a restarted `make cluster-up` keeps its kubeconfigs and tokens."""
    if (existing := _existing(directory)) is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_name = _name("mlmodel-operator-test-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = CertPair(cert=directory / "ca.crt", key=directory / "ca.key")
    ca.cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(ca.key, ca_key)

    def client(stem: str, common_name: str, organization: str | None = None) -> CertPair:
        return _issue(
            directory=directory,
            stem=stem,
            subject=_name(common_name, organization),
            ca_cert=ca_cert,
            ca_key=ca_key,
            server=False,
        )

    sa_key = directory / "service-account.key"
    _write_key(sa_key, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return Pki(
        ca=ca,
        apiserver=_issue(
            directory=directory,
            stem="apiserver",
            subject=_name("kube-apiserver"),
            ca_cert=ca_cert,
            ca_key=ca_key,
            server=True,
        ),
        admin=client("admin", "admin", "system:masters"),
        controller_manager=client("controller-manager", "system:kube-controller-manager"),
        scheduler=client("scheduler", "system:kube-scheduler"),
        # kwok acts for every fake kubelet; the admin group keeps its RBAC out of the way.
        kwok=client("kwok", "kwok", "system:masters"),
        service_account_key=sa_key,
        # system:kube-proxy is bound to system:node-proxier by the API server's own policy.
        kube_proxy=client("kube-proxy", "system:kube-proxy"),
        coredns=client("coredns", "system:coredns"),
        front_proxy=client("front-proxy-client", FRONT_PROXY_NAME),
    )


def issue_client(
    ca: CertPair, directory: Path, stem: str, common_name: str, organization: str | None = None
) -> CertPair:
    """A client certificate signed by the cluster's CA, for a component that joins later
    (a kubelet: `system:node:<name>` in `system:nodes`)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)  # create_pki makes an EC CA
    directory.mkdir(parents=True, exist_ok=True)
    return _issue(
        directory=directory,
        stem=stem,
        subject=_name(common_name, organization),
        ca_cert=ca_cert,
        ca_key=ca_key,
        server=False,
    )
