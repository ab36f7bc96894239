#!/usr/bin/env python3
"""Writes a one-layer OCI image (an OCI image layout directory) from files of this machine.

The real node's images are built here because no outside registry is reachable: Debian's
busybox-static, the project's own pause and faultapp programs. The output is reproducible
(fixed owners and times, gzip without a timestamp), so the same inputs give the same digests
and an image already in the registry or in containerd is recognised as unchanged.

    oci.py --out DIR --ref registry.local/busybox:1 --arch amd64 \
        --file /bin/busybox=/usr/bin/busybox-static:0755 --link /bin/sh=busybox \
        --dir /tmp:1777 --cmd sh

Standard library only: hack/ runs it with the system python3, before any virtual environment.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX = "application/vnd.oci.image.index.v1+json"


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def layer_tar(files: list[tuple[str, str, int]], links: list[tuple[str, str]], dirs: list[tuple[str, int]]) -> bytes:
    """An uncompressed layer: directories first (parents implied), then files and symlinks."""
    members: dict[str, tarfile.TarInfo] = {}
    contents: dict[str, bytes] = {}

    def add_dir(name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        members.setdefault(name, info)

    for target, mode in dirs:
        for parent in _parents(target):
            add_dir(parent)
        name = target.strip("/")
        members.pop(name, None)
        add_dir(name, mode)
    for target, source, mode in files:
        for parent in _parents(target):
            add_dir(parent)
        data = Path(source).read_bytes()
        info = tarfile.TarInfo(target.strip("/"))
        info.size, info.mode = len(data), mode
        members[info.name], contents[info.name] = info, data
    for target, points_to in links:
        for parent in _parents(target):
            add_dir(parent)
        info = tarfile.TarInfo(target.strip("/"))
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, points_to, 0o777
        members[info.name] = info
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members, key=lambda n: (members[n].type != tarfile.DIRTYPE, n)):
            info = members[name]
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            tar.addfile(info, io.BytesIO(contents[name]) if name in contents else None)
    return out.getvalue()


def _blob(root: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_layout(out: Path, ref: str, arch: str, layer: bytes, config: dict[str, object]) -> str:
    """Writes the layout directory; returns the manifest digest."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    compressed = gzip.compress(layer, compresslevel=6, mtime=0)
    layer_desc = {"mediaType": LAYER, **_blob(out, compressed)}
    image_config = {
        "architecture": arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
        "history": [{"created_by": "aisre hack/images/oci.py"}],
    }
    config_desc = {"mediaType": CONFIG, **_blob(out, _canonical(image_config))}
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config_desc, "layers": [layer_desc]}
    manifest_desc = {"mediaType": MANIFEST, **_blob(out, _canonical(manifest))}
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": ref}
    manifest_desc["platform"] = {"architecture": arch, "os": "linux"}
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (out / "index.json").write_bytes(_canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": [manifest_desc]}))
    return str(manifest_desc["digest"])


def archive(layout: Path, tar_path: Path) -> None:
    """The layout as a tar archive (what `ctr images import` reads)."""
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(layout.rglob("*")):
            info = tar.gettarinfo(str(path), str(path.relative_to(layout)))
            info.uid = info.gid = 0
            info.mtime = 0
            if path.is_file():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def _split(spec: str, sep: str) -> tuple[str, str]:
    left, found, right = spec.partition(sep)
    if not found or not left or not right:
        raise SystemExit(f"bad spec {spec!r}: expected A{sep}B")
    return left, right


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="layout directory (replaced)")
    p.add_argument("--tar", type=Path, help="also write the layout as this tar archive")
    p.add_argument("--ref", required=True, help="image reference recorded in index.json")
    p.add_argument("--arch", default="amd64")
    p.add_argument("--file", action="append", default=[], help="PATH_IN_IMAGE=SOURCE[:MODE]")
    p.add_argument("--link", action="append", default=[], help="PATH_IN_IMAGE=TARGET (symlink)")
    p.add_argument("--dir", action="append", default=[], help="PATH_IN_IMAGE[:MODE]")
    p.add_argument("--entrypoint", nargs="*", default=None)
    p.add_argument("--cmd", nargs="*", default=None)
    p.add_argument("--env", action="append", default=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    p.add_argument("--user", default="")
    args = p.parse_args()

    files = []
    for spec in args.file:
        target, source = _split(spec, "=")
        source, _, mode = source.partition(":")
        files.append((target, source, int(mode or "0644", 8)))
    links = [_split(spec, "=") for spec in args.link]
    dirs = []
    for spec in args.dir:
        target, _, mode = spec.partition(":")
        dirs.append((target, int(mode or "0755", 8)))
    config: dict[str, object] = {"Env": args.env, "WorkingDir": "/"}
    if args.entrypoint is not None:
        config["Entrypoint"] = args.entrypoint
    if args.cmd is not None:
        config["Cmd"] = args.cmd
    if args.user:
        config["User"] = args.user
    digest = write_layout(args.out, args.ref, args.arch, layer_tar(files, links, dirs), config)
    if args.tar:
        archive(args.out, args.tar)
    sys.stdout.write(f"{args.ref} {digest}\n")


if __name__ == "__main__":
    main()
