"""The scenario ``metrics`` step: series for Prometheus, relative to the fault time.

Each entry of a ``metrics`` step names a series, its labels, the pods it belongs to (a
label selector in the scenario namespace; ``namespace`` and ``pod`` labels are filled in
for each matching pod), a time range (``from``/``to``, default ``-30m``/``0``, where t=0 is
the moment the step runs), a sample interval (``step``, default 15s) and a ``shape``:

    constant  {value}                                  the same value throughout
    step      {start, end, at}                         ``start`` before ``at``, ``end`` after
    ramp      {start, end, at, until}                  flat at ``start`` until ``at``, then
                                                       linear to ``end`` at ``until`` (default ``to``)
    spike     {base, peak, at, duration}               ``peak`` for ``duration`` (default 2m) from ``at``
    noise     {mean, stddev, seed}                     Gaussian noise around ``mean``
Every shape also takes ``noise`` (a standard deviation, in the series' unit) and ``seed``,
added on top, and ``min`` (default 0) below which a value is clipped.

Counters (names ending in ``_total``, ``_count``, ``_sum`` or ``_bucket``, or
``counter: true``) are described by their *rate* per second — CPU in cores, requests per
second — and written as the running sum, so ``rate()`` returns the shape.

The samples are written by Prometheus' remote-write protocol (protobuf, snappy) to a
receiver with an out-of-order window, which accepts samples in the past. Who it talks to:
the Prometheus at ``url`` (``hack/prometheus.sh`` starts one on loopback).
"""

from __future__ import annotations

import math
import random
import struct
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisre.bench.scenario import Labels, Seconds

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
MAX_SAMPLES_PER_SERIES = 20_000
WRITE_TIMEOUT_S = 10.0


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: str = Field(pattern="^(constant|step|ramp|spike|noise)$")
    value: float | None = None
    start: float | None = None
    end: float | None = None
    base: float | None = None
    peak: float | None = None
    mean: float | None = None
    stddev: float = 0.0
    at: Seconds = 0.0
    until: Seconds | None = None
    duration: Seconds = 120.0
    noise: float = 0.0
    seed: int = 0
    min: float | None = 0.0


class SeriesSpec(BaseModel):
    """One entry of a ``metrics`` step."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    series: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    labels: Labels = Field(default_factory=dict)
    selector: Labels | None = None
    from_: Seconds = Field(-1800.0, alias="from")
    to: Seconds = 0.0
    step: Seconds = 15.0
    counter: bool | None = None
    shape: Shape

    @field_validator("step")
    @classmethod
    def _positive_step(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("step must be positive")
        return value

    @property
    def is_counter(self) -> bool:
        return self.counter if self.counter is not None else self.series.endswith(COUNTER_SUFFIXES)


def parse_step(entries: list[dict[str, Any]]) -> list[SeriesSpec]:
    """A ``metrics`` step's entries, validated (ValueError says which entry is wrong)."""
    out = []
    for number, entry in enumerate(entries, 1):
        try:
            out.append(SeriesSpec.model_validate(entry))
        except ValueError as error:
            raise ValueError(f"metrics entry {number}: {error}") from error
    return out


def shape_value(shape: Shape, t: float, series_end: float) -> float:
    """The shape's value at t seconds from the fault, without noise."""
    first = shape.start if shape.start is not None else (shape.base if shape.base is not None else (shape.mean or 0.0))
    if shape.kind == "constant":
        return shape.value if shape.value is not None else first
    if shape.kind == "noise":
        return shape.mean if shape.mean is not None else (shape.value or first)
    if shape.kind == "step":
        return first if t < shape.at else (shape.end if shape.end is not None else first)
    if shape.kind == "ramp":
        until = shape.until if shape.until is not None else series_end
        end = shape.end if shape.end is not None else first
        if t <= shape.at or until <= shape.at:
            return first if t <= shape.at else end
        return first + (end - first) * min(1.0, (t - shape.at) / (until - shape.at))
    # spike
    base = shape.base if shape.base is not None else first
    peak = shape.peak if shape.peak is not None else (shape.end if shape.end is not None else base)
    return peak if shape.at <= t < shape.at + shape.duration else base


def samples(spec: SeriesSpec, salt: str = "") -> list[tuple[float, float]]:
    """(offset seconds, value) pairs of one series; counters integrated from their rate."""
    count = int(math.floor((spec.to - spec.from_) / spec.step)) + 1
    if count <= 0:
        return []
    if count > MAX_SAMPLES_PER_SERIES:
        raise ValueError(f"series {spec.series}: {count} samples, more than {MAX_SAMPLES_PER_SERIES}")
    rng = random.Random(f"{spec.shape.seed}:{spec.series}:{salt}")
    sigma = spec.shape.stddev if spec.shape.kind == "noise" else spec.shape.noise
    out, total = [], 0.0
    for i in range(count):
        t = spec.from_ + i * spec.step
        value = shape_value(spec.shape, t, spec.to) + (rng.gauss(0.0, sigma) if sigma else 0.0)
        if spec.shape.min is not None:
            value = max(spec.shape.min, value)
        if spec.is_counter:
            total += value * (spec.step if i else 0.0)
            value = total
        out.append((t, value))
    return out


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass
class Series:
    labels: dict[str, str]
    points: list[tuple[int, float]] = field(default_factory=list)  # (ms since epoch, value)


def expand(specs: Iterable[SeriesSpec], namespace: str, pods: list[dict[str, Any]], t0: float) -> list[Series]:
    """Concrete series for the pods of the namespace; ``t0`` is the fault time (epoch s)."""
    out: list[Series] = []
    for spec in specs:
        targets: list[dict[str, str]]
        if spec.selector is None:
            targets = [{}]
        else:
            targets = [{"pod": p["metadata"]["name"]} for p in pods
                       if _matches(spec.selector, p["metadata"].get("labels") or {})
                       and not p["metadata"].get("deletionTimestamp")]
            if not targets:
                raise ValueError(f"series {spec.series}: selector {spec.selector} matches no pod in {namespace}")
        for extra in targets:
            labels = {**spec.labels, "namespace": namespace, **extra, "__name__": spec.series}
            values = samples(spec, salt=extra.get("pod", ""))
            out.append(Series(labels, [(int(round((t0 + t) * 1000)), v) for t, v in values]))
    return out


# --- remote write: protobuf (prompb.WriteRequest) and snappy, by hand --------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # a length-delimited field
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_write_request(series: Iterable[Series]) -> bytes:
    """prompb.WriteRequest{timeseries: [TimeSeries{labels, samples}]}; labels sorted by name."""
    body = bytearray()
    for s in series:
        ts = bytearray()
        for name in sorted(s.labels):
            ts += _field(1, _field(1, name.encode()) + _field(2, s.labels[name].encode()))
        for millis, value in s.points:
            # Sample{double value = 1; int64 timestamp = 2}
            sample = b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(millis & 0xFFFFFFFFFFFFFFFF)
            ts += _field(2, sample)
        body += _field(1, bytes(ts))
    return bytes(body)


def snappy_literal(data: bytes) -> bytes:
    """Snappy block format with literals only: valid for every decoder, no compression
    (the payloads are small and local; no snappy library is needed)."""
    out = bytearray(_varint(len(data)))
    for offset in range(0, len(data), 65536):
        chunk = data[offset:offset + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        out += chunk
    return bytes(out)


class RemoteWriteError(RuntimeError):
    """Prometheus refused the samples (or could not be reached)."""


def remote_write(url: str, series: list[Series], *, batch: int = 200) -> int:
    """Writes the series to ``url``/api/v1/write; returns the number of samples."""
    written = 0
    with httpx.Client(timeout=WRITE_TIMEOUT_S) as client:
        for i in range(0, len(series), batch):
            part = series[i:i + batch]
            payload = snappy_literal(encode_write_request(part))
            try:
                response = client.post(f"{url.rstrip('/')}/api/v1/write", content=payload, headers={
                    "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                    "X-Prometheus-Remote-Write-Version": "0.1.0"})
            except httpx.HTTPError as error:
                raise RemoteWriteError(f"remote write to {url}: {error}") from error
            if response.status_code >= 300:
                raise RemoteWriteError(f"remote write to {url}: HTTP {response.status_code}: {response.text[:300]}")
            written += sum(len(s.points) for s in part)
    return written


# --- the runner's side ------------------------------------------------------------------------
def write_step(url: str | None, entries: list[dict[str, Any]], namespace: str, pods: list[dict[str, Any]],
               t0: float) -> int:
    """Plays one ``metrics`` step: validates it, expands it for the namespace's pods and
    writes it to Prometheus. Returns the number of samples written."""
    specs = parse_step(entries)
    if not url:
        raise RemoteWriteError("a metrics step needs a Prometheus: pass --prometheus-url or set AISRE_PROMETHEUS_URL "
                               "(hack/prometheus.sh starts one)")
    return remote_write(url, expand(specs, namespace, pods, t0))


def has_metrics(scenario: Any) -> bool:
    return any(step.metrics is not None for step in scenario.fault)


def bring_up_prometheus(checkout: Path) -> str:
    """Starts (or finds) the loopback Prometheus of ``hack/prometheus.sh``; returns its URL."""
    done = subprocess.run(["bash", str(checkout / "hack" / "prometheus.sh"), "start"], capture_output=True, text=True,
                          timeout=300, check=False)
    if done.returncode != 0:
        raise RemoteWriteError(f"hack/prometheus.sh start failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]
