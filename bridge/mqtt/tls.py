"""The TLS context for the broker connection, from `mqtt.tls` (verification on by default)."""

from __future__ import annotations

import ssl

from bridge.config import TlsConfig


def tls_context(config: TlsConfig) -> ssl.SSLContext | None:
    if not config.enabled:
        return None
    context = ssl.create_default_context(
        cafile=str(config.ca_file) if config.ca_file is not None else None
    )
    if config.certfile is not None:
        context.load_cert_chain(
            str(config.certfile), str(config.keyfile) if config.keyfile is not None else None
        )
    if config.insecure:  # only for testing: no certificate or host name check
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
