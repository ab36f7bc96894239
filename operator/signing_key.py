"""The operator's signing key (``aisre.api.signing``): the HMAC key that marks what the
operator itself decided, so the executor can tell it from what anyone else wrote.

Where it comes from, first found wins:

1. ``AISRE_SIGNING_KEY_FILE``: the chart mounts the Secret ``<release>-signing-key`` of
   the operator's namespace into the operator's pod. Nobody else needs to read it; the
   operator's RBAC does not even include Secrets.
2. ``AISRE_SIGNING_KEY_SECRET`` (``namespace/name[:key]``, default
   ``<operator namespace>/aisre-signing-key``) read through the API, and created there
   with a random key when it does not exist yet: ``aisre run`` on a laptop with an admin
   kubeconfig, and the tests, which sign what they pretend the operator wrote.
3. Neither readable: a random key held in memory. The operator still works, but what it
   signed is not trusted after a restart (those actions are re-investigated); a warning
   says so.

A configured file that cannot be read is an error: the operator does not start with a key
it was not given.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import httpx
import structlog

from aisre.operator.config import OperatorConfig

log = structlog.get_logger("aisre.operator")

DEFAULT_SECRET = "aisre-signing-key"
KEY_BYTES = 32


class SigningKeyError(RuntimeError):
    """The configured signing key cannot be read."""


def secret_ref(config: OperatorConfig) -> tuple[str, str, str]:
    """(namespace, name, key) of the Secret that holds the key."""
    ref, _, key = (config.signing_key_secret or f"{config.operator_namespace}/{DEFAULT_SECRET}").partition(":")
    namespace, _, name = ref.partition("/")
    return namespace, name, key or "key"


async def read_or_create(client: httpx.AsyncClient, namespace: str, name: str, key: str) -> bytes | None:
    """The key in the Secret, creating the Secret with a random key if it is missing;
    None when the Secret cannot be read or made (no rights, no namespace)."""
    path = f"/api/v1/namespaces/{namespace}/secrets"
    response = await client.get(f"{path}/{name}")
    if response.status_code == 404:
        value = base64.b64encode(secrets.token_urlsafe(48).encode()).decode()
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": {
            "app.kubernetes.io/name": "aisre", "app.kubernetes.io/component": "signing-key"}},
                "type": "Opaque", "data": {key: value}}
        created = await client.post(path, json=body)
        if created.status_code == 409:
            response = await client.get(f"{path}/{name}")
        elif created.status_code in (200, 201):
            return base64.b64decode(value)
        else:
            return None
    if response.status_code != 200:
        return None
    data = (response.json().get("data") or {}).get(key)
    return base64.b64decode(data) if data else None


async def signing_key(config: OperatorConfig, client: httpx.AsyncClient) -> bytes:
    if config.signing_key_file:
        try:
            value = Path(config.signing_key_file).read_bytes().strip()
        except OSError as error:
            raise SigningKeyError(f"cannot read the signing key file {config.signing_key_file}: {error}") from error
        if len(value) < 16:
            raise SigningKeyError(f"the signing key in {config.signing_key_file} is shorter than 16 bytes")
        return value
    namespace, name, key = secret_ref(config)
    try:
        found = await read_or_create(client, namespace, name, key)
    except httpx.HTTPError:
        found = None
    if found:
        return found
    log.warning("no signing key readable: using one held in memory; actions recommended before a restart "
                "will not be trusted after it", secret=f"{namespace}/{name}")
    return secrets.token_bytes(KEY_BYTES)
