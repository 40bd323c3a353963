"""The QRS client's TLS context: Qlik's certificate scheme (client.pem and client_key.pem
exported from the QMC, root.pem to verify the server)."""

from __future__ import annotations

import ssl

from bridge.config import QrsConfig


class CertificateError(Exception):
    """A configured certificate cannot be used; names the key, never what the file holds."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


def _no_password() -> bytes:
    return b""  # an encrypted key fails to load rather than asking on a terminal


def client_context(qrs: QrsConfig) -> ssl.SSLContext:
    """Verifies the server (against `root_cert` alone: the site's own CA is the only one that
    vouches for QRS; without it, the system's CAs) unless `verify` is false, and presents the
    client certificate. Raises CertificateError."""
    if qrs.client_cert is None or qrs.client_key is None:
        raise CertificateError("qrs.client_cert", "not set")
    try:
        context = ssl.create_default_context(cafile=qrs.root_cert)
    except (ssl.SSLError, OSError):
        raise CertificateError("qrs.root_cert", "not a PEM certificate") from None
    if not qrs.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(qrs.client_cert, qrs.client_key, password=_no_password)
    except (ssl.SSLError, OSError):
        raise CertificateError(
            "qrs.client_key",
            "qrs.client_cert and qrs.client_key are not a PEM certificate and its key "
            "(export them from the QMC without a password)",
        ) from None
    return context
