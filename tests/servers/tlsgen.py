"""A private test CA and a loopback server certificate, made with the openssl CLI."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.servers.common import ServerUnavailable

# VERIFY_X509_STRICT (the default from Python 3.13) wants keyUsage on the CA and an
# authorityKeyIdentifier on the leaf, so both are spelled out instead of left to openssl.cnf.
_CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
O = pocwatch tests
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_SERVER_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
O = pocwatch tests
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a CA, a server certificate and key signed by it, and an unrelated CA."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    other_ca_file: Path

    def copy_to(self, directory: Path) -> TlsFiles:
        """Copy the files into `directory` (so a server can own them) and return the copies."""
        directory.mkdir(parents=True, exist_ok=True)
        copies = {}
        for field in ("ca_file", "cert_file", "key_file", "other_ca_file"):
            source: Path = getattr(self, field)
            target = directory / source.name
            shutil.copyfile(source, target)
            os.chmod(target, 0o600 if field == "key_file" else 0o644)
            copies[field] = target
        return TlsFiles(**copies)


def _openssl(*args: str | Path, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServerUnavailable("openssl not found (run scripts/install-system-deps)")
    result = subprocess.run(
        [openssl, *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: {result.stderr.strip()}")


def _make_ca(directory: Path, name: str, cn: str) -> tuple[Path, Path]:
    key, cert, config = (
        directory / f"{name}.key",
        directory / f"{name}.pem",
        directory / f"{name}.cnf",
    )
    config.write_text(_CA_CONFIG.format(cn=cn))
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key,
        cwd=directory,
    )
    _openssl(
        "req", "-x509", "-new", "-key", key, "-sha256", "-days", "3650",
        "-config", config, "-extensions", "ca", "-out", cert,
        cwd=directory,
    )  # fmt: skip
    return key, cert


def generate_tls_files(directory: Path) -> TlsFiles:
    """Generate a CA, a server certificate (localhost, 127.0.0.1) and another CA in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca(directory, "ca", "pocwatch test CA")
    _, other_ca = _make_ca(directory, "other-ca", "pocwatch unrelated CA")
    key, csr, cert = directory / "key.pem", directory / "server.csr", directory / "cert.pem"
    config = directory / "server.cnf"
    config.write_text(_SERVER_CONFIG)
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key,
        cwd=directory,
    )
    _openssl("req", "-new", "-key", key, "-config", config, "-out", csr, cwd=directory)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "3650", "-sha256",
        "-extfile", config, "-extensions", "server", "-out", cert,
        cwd=directory,
    )  # fmt: skip
    return TlsFiles(ca_file=ca_cert, cert_file=cert, key_file=key, other_ca_file=other_ca)


_cache_lock = threading.Lock()
_cached: TlsFiles | None = None


def shared_tls_files() -> TlsFiles:
    """The process-wide TLS files, generated on first use and removed at exit."""
    global _cached
    with _cache_lock:
        if _cached is None:
            directory = Path(tempfile.mkdtemp(prefix="pocwatch-tls-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            _cached = generate_tls_files(directory)
        return _cached
