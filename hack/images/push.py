#!/usr/bin/env python3
"""Pushes an OCI image layout (written by oci.py) to a registry over the distribution API.

    push.py LAYOUT http://127.0.0.1:5100 faultapp:1 [--user U --password P]

Blobs the registry already has are not sent again (HEAD first), so pushing an unchanged image
costs a few requests. Basic authentication is answered when the registry asks for it (401).
Standard library only: hack/ runs it with the system python3.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


class Registry:
    def __init__(self, base: str, user: str = "", password: str = "") -> None:
        self.base = base.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else ""

    def request(self, method: str, url: str, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        if not url.startswith("http"):
            url = self.base + url
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if self.auth:
            req.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
                return resp.status, dict(resp.headers)
        except urllib.error.HTTPError as error:
            if method == "HEAD" and error.code == 404:
                return 404, {}
            body = error.read().decode(errors="replace")[:300]
            raise SystemExit(f"{method} {url}: {error.code} {error.reason}: {body}") from None

    def push_blob(self, repo: str, digest: str, data: bytes) -> None:
        if self.request("HEAD", f"/v2/{repo}/blobs/{digest}")[0] == 200:
            return
        _, headers = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        location = urllib.parse.urljoin(self.base + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", data,
                     {"Content-Type": "application/octet-stream"})

    def push_manifest(self, repo: str, tag: str, media_type: str, data: bytes) -> None:
        self.request("PUT", f"/v2/{repo}/manifests/{tag}", data, {"Content-Type": media_type})


def push(layout: Path, registry: Registry, target: str) -> str:
    repo, _, tag = target.rpartition(":")
    index = json.loads((layout / "index.json").read_text())
    descriptor = index["manifests"][0]

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    manifest_bytes = blob(descriptor["digest"])
    manifest = json.loads(manifest_bytes)
    for item in [manifest["config"], *manifest["layers"]]:
        registry.push_blob(repo, item["digest"], blob(item["digest"]))
    registry.push_manifest(repo, tag, descriptor["mediaType"], manifest_bytes)
    return str(descriptor["digest"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("layout", type=Path)
    p.add_argument("registry", help="base URL, e.g. http://127.0.0.1:5100")
    p.add_argument("target", help="REPOSITORY:TAG in that registry")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    args = p.parse_args()
    digest = push(args.layout, Registry(args.registry, args.user, args.password), args.target)
    sys.stdout.write(f"{args.target} {digest}\n")


if __name__ == "__main__":
    main()
