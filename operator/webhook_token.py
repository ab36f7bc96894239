"""The Alertmanager webhook's bearer token: from a mounted Secret file (the chart's way),
or read once at start-up from a Secret named ``namespace/name[:key]`` (for ``aisre run``
outside the cluster). Without one the webhook refuses every request (503): fail closed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx

from aisre.operator.config import OperatorConfig


async def webhook_token(config: OperatorConfig, client: httpx.AsyncClient, logger: Any) -> str | None:
    if config.alertmanager_token_file:
        try:
            return Path(config.alertmanager_token_file).read_text().strip() or None
        except OSError as error:
            logger.error(f"cannot read the Alertmanager token file: {error}")
            return None
    if not config.alertmanager_token_secret:
        return None
    ref, _, key = config.alertmanager_token_secret.partition(":")
    namespace, _, name = ref.partition("/")
    response = await client.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    if response.status_code != 200:
        logger.error(f"cannot read the Alertmanager token Secret {ref}: HTTP {response.status_code}")
        return None
    value = (response.json().get("data") or {}).get(key or "token")
    return base64.b64decode(value).decode().strip() if value else None
