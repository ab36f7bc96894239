"""How Kopf logs in to the API server: with the credentials the ``kubernetes`` client
resolves from the operator's kubeconfig (named explicitly, so an in-process operator in
tests and ``aisre run --kubeconfig`` use exactly the cluster they were given), or from the
in-cluster service account."""

from __future__ import annotations

import kopf

from aisre.kube import bearer_token, configuration


def connection_info(kubeconfig: str | None) -> kopf.ConnectionInfo:
    config = configuration(kubeconfig)
    token = bearer_token(config)
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )
