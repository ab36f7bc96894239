"""The scenario ``metrics`` step without Prometheus: shapes, counters, labels and the
remote-write encoding (checked by decoding it again)."""

from __future__ import annotations

import struct

import pytest

from aisre.bench.metrics import (
    encode_write_request,
    expand,
    parse_step,
    samples,
    snappy_literal,
)


def one(entry: dict) -> list[tuple[float, float]]:
    return samples(parse_step([entry])[0])


def test_shapes_relative_to_the_fault_time() -> None:
    ramp = one({"series": "m", "from": "-30m", "step": "15s", "shape": {"kind": "ramp", "start": 1.0e8, "end": 5.2e8, "at": "-20m"}})
    assert ramp[0] == (-1800.0, 1.0e8) and ramp[-1] == (0.0, 5.2e8)
    assert dict(ramp)[-1200.0] == 1.0e8 and 1.0e8 < dict(ramp)[-600.0] < 5.2e8
    step = dict(one({"series": "m", "from": "-10m", "shape": {"kind": "step", "start": 1, "end": 3, "at": "-5m"}}))
    assert step[-315.0] == 1 and step[-300.0] == 3
    spike = dict(one({"series": "m", "from": "-10m", "shape": {"kind": "spike", "base": 1, "peak": 9, "at": "-5m", "duration": "1m"}}))
    assert spike[-300.0] == 9 and spike[-240.0] == 1 and spike[-600.0] == 1
    const = one({"series": "m", "shape": {"kind": "constant", "value": 7}})
    assert len(const) == 121 and {v for _, v in const} == {7}


def test_noise_is_deterministic_and_clipped_at_zero() -> None:
    entry = {"series": "m", "shape": {"kind": "noise", "mean": 0.1, "stddev": 1.0, "seed": 3}}
    assert one(entry) == one(entry)
    assert min(v for _, v in one(entry)) == 0.0


def test_counters_are_written_as_the_running_sum_of_their_rate() -> None:
    points = one({"series": "http_requests_total", "from": "-1m", "step": "15s", "shape": {"kind": "constant", "value": 2}})
    assert [v for _, v in points] == [0, 30, 60, 90, 120]
    gauge = one({"series": "restarts_total", "counter": False, "from": "-1m", "shape": {"kind": "constant", "value": 2}})
    assert {v for _, v in gauge} == {2}


def test_pods_matching_the_selector_get_namespace_and_pod_labels() -> None:
    pods = [{"metadata": {"name": "web-1", "labels": {"app": "web"}}}, {"metadata": {"name": "db-0", "labels": {"app": "db"}}},
            {"metadata": {"name": "web-old", "labels": {"app": "web"}, "deletionTimestamp": "x"}}]
    specs = parse_step([{"series": "container_memory_working_set_bytes", "labels": {"container": "web"},
                         "selector": {"app": "web"}, "from": "-1m", "shape": {"kind": "constant", "value": 1}}])
    out = expand(specs, "ns1", pods, t0=1000.0)
    assert [s.labels for s in out] == [{"container": "web", "namespace": "ns1", "pod": "web-1",
                                        "__name__": "container_memory_working_set_bytes"}]
    assert out[0].points[0] == (940_000, 1.0) and out[0].points[-1] == (1_000_000, 1.0)
    with pytest.raises(ValueError, match="matches no pod"):
        expand(parse_step([{"series": "m", "selector": {"app": "nope"}, "shape": {"kind": "constant", "value": 1}}]), "ns1", pods, 0)


def test_bad_entries_say_which_one() -> None:
    with pytest.raises(ValueError, match="metrics entry 2"):
        parse_step([{"series": "ok", "shape": {"kind": "constant", "value": 1}}, {"series": "bad", "shape": {"kind": "zigzag"}}])
    with pytest.raises(ValueError):
        parse_step([{"series": "m", "step": "0s", "shape": {"kind": "constant", "value": 1}}])


# --- decoding what we encode (a minimal protobuf and snappy reader, for the test only) -------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _fields(buf: bytes) -> list[tuple[int, bytes | float | int]]:
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _varint(buf, pos)
            out.append((number, buf[pos:pos + length]))
            pos += length
        elif wire == 1:
            out.append((number, struct.unpack("<d", buf[pos:pos + 8])[0]))
            pos += 8
        elif wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
    return out


def _unsnappy(data: bytes) -> bytes:
    length, pos = _varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        assert tag & 3 == 0, "only literals are written"
        n = tag >> 2
        if n >= 60:
            width = n - 59
            n = int.from_bytes(data[pos:pos + width], "little")
            pos += width
        out += data[pos:pos + n + 1]
        pos += n + 1
    assert len(out) == length
    return bytes(out)


def test_remote_write_payload_decodes_to_the_series() -> None:
    pods = [{"metadata": {"name": f"web-{i}", "labels": {"app": "web"}}} for i in range(30)]
    specs = parse_step([{"series": "x_total", "labels": {"code": "500"}, "selector": {"app": "web"},
                         "shape": {"kind": "constant", "value": 1}}])
    series = expand(specs, "ns", pods, t0=1_700_000_000.0)
    payload = snappy_literal(encode_write_request(series))
    decoded = _fields(_unsnappy(payload))
    assert len(decoded) == 30
    first = _fields(decoded[0][1])
    labels = [dict((n, v.decode()) for n, v in _fields(b)) for num, b in first if num == 1]
    assert [lab[1] for lab in labels] == sorted(lab[1] for lab in labels)  # sorted by name
    assert {lab[1]: lab[2] for lab in labels} == {"__name__": "x_total", "code": "500", "namespace": "ns", "pod": "web-0"}
    samples_ = [dict(_fields(b)) for num, b in first if num == 2]
    assert samples_[0] == {1: 0.0, 2: 1_699_998_200_000} and samples_[-1][2] == 1_700_000_000_000
    assert len(payload) > 65536  # more than one literal chunk was needed and decoded


def test_every_metrics_step_in_the_repository_validates() -> None:
    import yaml

    from tests.helpers import REPO

    seen = 0
    for path in sorted((REPO / "scenarios").glob("*.yaml")) + sorted((REPO / "tests/scenarios-metrics-heldout").glob("*.yaml")):
        for step in yaml.safe_load(path.read_text()).get("fault") or []:
            if "metrics" in step:
                assert parse_step(step["metrics"]), path
                seen += 1
    assert seen >= 19
