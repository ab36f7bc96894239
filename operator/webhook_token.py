"""The webhooks' credentials: the Alertmanager and Opsgenie bearer tokens and the PagerDuty
signing secret(s). Each comes from a mounted Secret file (the chart's way), or is read
once at start-up from a Secret named ``namespace/name[:key]`` (for ``aisre run`` outside
the cluster). Without one, that webhook refuses every request (503): fail closed.

A PagerDuty file or key may hold several secrets, one a line: while a subscription's
secret is rotated, deliveries signed with either are taken.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx

from aisre.operator.config import OperatorConfig


async def _secret_value(file: str | None, secret: str | None, default_key: str, what: str,
                        client: httpx.AsyncClient, logger: Any) -> str | None:
    if file:
        try:
            return Path(file).read_text().strip() or None
        except OSError as error:
            logger.error(f"cannot read the {what} file: {error}")
            return None
    if not secret:
        return None
    ref, _, key = secret.partition(":")
    namespace, _, name = ref.partition("/")
    response = await client.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    if response.status_code != 200:
        logger.error(f"cannot read the {what} Secret {ref}: HTTP {response.status_code}")
        return None
    value = (response.json().get("data") or {}).get(key or default_key)
    return base64.b64decode(value).decode().strip() if value else None


async def webhook_token(config: OperatorConfig, client: httpx.AsyncClient, logger: Any) -> str | None:
    return await _secret_value(config.alertmanager_token_file, config.alertmanager_token_secret, "token",
                               "Alertmanager token", client, logger)


async def opsgenie_token(config: OperatorConfig, client: httpx.AsyncClient, logger: Any) -> str | None:
    return await _secret_value(config.opsgenie_token_file, config.opsgenie_token_secret, "token",
                               "Opsgenie webhook token", client, logger)


async def pagerduty_secrets(config: OperatorConfig, client: httpx.AsyncClient, logger: Any) -> tuple[str, ...]:
    value = await _secret_value(config.pagerduty_secret_file, config.pagerduty_secret_secret, "secret",
                                "PagerDuty webhook secret", client, logger)
    return tuple(line.strip() for line in (value or "").splitlines() if line.strip())
