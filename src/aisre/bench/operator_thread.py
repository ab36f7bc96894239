"""The real operator (``aisre.operator.main.serve``) run in-process: in a thread with its
own event loop, stopped through Kopf's stop flag. ``aisre bench`` uses it unless told that
an operator already runs, and the cluster tests use it as their operator fixture."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorThread:
    """``with OperatorThread(kubeconfig, port):`` runs the operator until the block ends."""

    def __init__(
        self,
        kubeconfig: Path | str,
        http_port: int,
        *,
        namespaces: tuple[str, ...] = (),
        ready_timeout: float = 30,
        stop_timeout: float = 30,
        prometheus_url: str | None = None,
        **config: Any,
    ) -> None:
        self.prometheus_url = prometheus_url  # None: no metrics agent
        self.kubeconfig = Path(kubeconfig)
        self.http_port = http_port
        self.namespaces = namespaces  # names or Kopf globs; empty: cluster-wide
        self.config = config  # further OperatorConfig fields (detection, thresholds, ...)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="aisre-operator", daemon=True)

    def _run(self) -> None:
        from aisre.operator.config import OperatorConfig, prometheus_from_env
        from aisre.operator.main import serve

        prometheus = prometheus_from_env({"AISRE_PROMETHEUS_URL": self.prometheus_url or ""})
        config = OperatorConfig(http_port=self.http_port, kubeconfig=str(self.kubeconfig), namespaces=self.namespaces,
                                prometheus=prometheus, **{k: v for k, v in self.config.items() if v is not None})
        try:
            asyncio.run(serve(config, stop=self.stop, ready=self.ready))
        except BaseException as error:  # reported by __enter__ / the caller, not swallowed
            self.error = error

    def __enter__(self) -> OperatorThread:
        self.thread.start()
        if not self.ready.wait(self.ready_timeout):
            self.stop.set()
            raise RuntimeError(f"operator did not become ready within {self.ready_timeout:g} s: {self.error!r}")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(self.stop_timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"operator did not stop within {self.stop_timeout:g} s")
