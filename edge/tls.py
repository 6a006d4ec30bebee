"""The edge's TLS: Mozilla's "intermediate" profile (TLS 1.2 and 1.3; forward-secret AEAD
ciphers for 1.2), from a configured certificate chain and key."""

from __future__ import annotations

import ssl

from edge.config import EdgeConfig

# https://ssl-config.mozilla.org/ intermediate, v5.7 (TLS 1.3 suites are OpenSSL's defaults).
INTERMEDIATE_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
])  # fmt: skip


def server_context(config: EdgeConfig) -> ssl.SSLContext | None:
    """None when the config has no certificate (allowed on loopback only)."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context
