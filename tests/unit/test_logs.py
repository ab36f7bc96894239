"""Kopf's per-object log lines keep the object they are about in our JSON lines."""

from __future__ import annotations

import json
import logging

import pytest

from aisre.operator.logs import configure_logging


def test_kopf_object_lines_name_their_object(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        logging.getLogger("kopf.objects").warning("Handler failed temporarily", extra={
            "k8s_ref": {"apiVersion": "aisre.dev/v1alpha1", "kind": "Incident", "namespace": "shop", "name": "checkout-1"}})
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        logging.getLogger().handlers[:] = []
    assert line["event"] == "Handler failed temporarily" and line["level"] == "warning"
    assert line["k8s_ref"]["name"] == "checkout-1" and line["k8s_ref"]["namespace"] == "shop"


def test_the_tail_is_recent_unless_its_lines_say_they_are_long_past() -> None:
    from aisre.agents.logs import recent_flags

    assert recent_flags(["a", "b", "c", "d", "e"]) == [False, False, False, True, True]  # the last two
    timed = ['{"time":"2026-12-05T14:04:12.560Z","msg":"peer unavailable","status":500}',
             '{"time":"2026-12-05T14:04:19.027Z","msg":"peer unavailable","status":500}',
             '{"time":"2026-12-05T14:20:02.130Z","msg":"GET /x 200 64ms"}']
    assert recent_flags(timed) == [False, False, True]  # 16 minutes before the last line: over
    close = ["2026-12-05 14:19:58,001 ERROR peer unavailable", "2026-12-05 14:20:02,130 INFO GET /x 200"]
    assert recent_flags(close) == [True, True]
    assert recent_flags(["2026-12-05 14:04:12 ERROR x", "  at frame (no time)", "2026-12-05 14:20:02 INFO y"]) == \
        [False, False, True]  # a frame has the time of the line that logged it
    assert recent_flags(["ERROR x", "no time, no entry of its own? no: a line of its own", "INFO y"]) == [False, True, True]


def test_a_stack_trace_is_one_entry_of_the_tail() -> None:
    from aisre.agents.logs import entries_of, recent_flags

    node = ['GET /api/search 500 "fetch failed"', "  at async $fetchRaw (ofetch.mjs:270:14)",
            "  [cause]: Error: connect ECONNREFUSED 10.96.0.40:7700", "    errno: -111,", "  }"]
    assert entries_of(node) == [0, 0, 0, 0, 0] and all(recent_flags(node))
    java = ["10:00:01 INFO started", "10:00:02 INFO order 7 routed", "10:00:07 ERROR push failed", "",
            "io.netty.channel.ConnectTimeoutException: connection timed out: kds/10.96.41.7:80",
            "\tat io.netty.Epoll.run(Epoll.java:615)", "Caused by: java.net.ConnectException: timed out",
            "\t... 12 more", "10:00:22 WARN backlog pending=17"]
    assert entries_of(java) == [0, 1, 2, 2, 3, 3, 3, 3, 4]
    assert recent_flags(java) == [False, False, False, False, True, True, True, True, True]
    python = ["2026-03-18 08:41:21,530 ERROR: Failed to update leader", "Traceback (most recent call last):",
              '  File "etcd3.py", line 881, in update_leader', "    return bool(self._do_update_leader(leader))",
              "patroni.dcs.etcd3.Etcd3ClientError: database space exceeded", "2026-03-18 08:41:21,533 INFO: Demoting self"]
    assert entries_of(python) == [0, 0, 0, 0, 0, 1] and all(recent_flags(python))


def test_error_text_that_exactly_one_other_program_logs_is_an_echo_of_its_refusal() -> None:
    from aisre.agents.log_signatures import phrase_windows
    from aisre.agents.logs import Echoes

    client = '{"level":"ERROR","message":"ERROR: widgets may not be frobbed in quiet mode","logger":"a.b.C"}'
    peer = "2026-01-01 10:00:00 UTC [1] WARNING C-0x5: app@10.1.2.3:4 refused: widgets may not be frobbed in quiet mode"
    assert phrase_windows(client) & phrase_windows(peer)
    assert not phrase_windows("ERROR failed error: 10.0.0.1:80 x.y.z")  # no run of plain, telling words

    echoes = Echoes()
    echoes.asked("Deployment/a", phrase_windows(client), client, True, ("pod", {}, "main"))
    echoes.told("Deployment/a", phrase_windows(client))
    echoes.told("Deployment/b", phrase_windows(peer))
    echoes.told("Deployment/c", phrase_windows("INFO started in quiet mode"))
    [(who, by, entry)] = echoes.found()
    assert (who, by, entry["count"]) == ("Deployment/a", "Deployment/b", 1)
    # Words that two other programs log are a library's wording, not one peer's refusal.
    echoes.told("Deployment/c", phrase_windows(peer))
    assert echoes.found() == []
