#!/usr/bin/env python3
"""Package the filter's .wasm as an OCI image for an Istio `WasmPlugin` `url: oci://...`, without Docker.

Writes an OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md):

    <out>/oci-layout                      {"imageLayoutVersion": "1.0.0"}
    <out>/index.json                      image index -> the one manifest (tag in org.opencontainers.image.ref.name)
    <out>/blobs/sha256/<manifest digest>  image manifest -> config + one layer
    <out>/blobs/sha256/<config digest>    application/vnd.module.wasm.config.v1+json
    <out>/blobs/sha256/<layer digest>     application/vnd.module.wasm.content.layer.v1+wasm: the .wasm bytes, as is

and, with --tar, the same tree as an uncompressed tar (an "oci-archive": what `skopeo copy oci-archive:`
reads; `crane push` and `oras cp --from-oci-layout` read the directory).

The media types are those of the Wasm OCI artifact format Istio's agent pulls (pkg/wasm/imagefetcher.go):
when the manifest's config media type is `application/vnd.module.wasm.config.v1+json`, the image must have
exactly one layer, of type `application/vnd.module.wasm.content.layer.v1+wasm`, whose blob is the raw Wasm
binary (not a tar).  Istio checks the `\\0asm` magic after the pull.  (The other format Istio accepts, a
Docker/OCI image whose single tar layer holds `plugin.wasm`, needs no special tooling and is not made here.)

Everything is deterministic (no timestamps): the same .wasm always gives the same digests.

Usage:
    scripts/oci-image.py [--wasm PATH] [--out DIR] [--tar FILE] [--tag TAG]
    make oci-image        # -> target/oci/jwt-policy-filter/ and target/oci/jwt-policy-filter.tar
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
WASM_CONFIG_MEDIA_TYPE = "application/vnd.module.wasm.config.v1+json"
WASM_LAYER_MEDIA_TYPE = "application/vnd.module.wasm.content.layer.v1+wasm"
WASM_MAGIC = b"\0asm"


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes, annotations: dict | None = None) -> dict:
    desc = {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}
    if annotations:
        desc["annotations"] = annotations
    return desc


def build(wasm: bytes, tag: str, filename: str, version: str) -> dict[str, bytes]:
    """The layout's files, path -> bytes."""
    if not wasm.startswith(WASM_MAGIC):
        raise SystemExit("not a WebAssembly binary (no \\0asm magic)")
    config = canonical({
        # Informational (Istio does not read the config blob); the keys follow the solo.io Wasm
        # artifact spec that introduced these media types.
        "type": "envoy_proxy",
        "abiVersions": ["v0.2.1"],
        "rootIds": ["jwt_policy_filter"],
    })
    config_desc = descriptor(WASM_CONFIG_MEDIA_TYPE, config)
    layer_desc = descriptor(WASM_LAYER_MEDIA_TYPE, wasm, {"org.opencontainers.image.title": filename})
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_desc,
        "layers": [layer_desc],
        "annotations": {
            "org.opencontainers.image.title": "jwt-policy-filter",
            "org.opencontainers.image.description": "Proxy-Wasm filter enforcing Gloo-Mesh-style JWTPolicy resources",
            "org.opencontainers.image.version": version,
        },
    })
    manifest_desc = descriptor(MANIFEST_MEDIA_TYPE, manifest, {"org.opencontainers.image.ref.name": tag})
    index = canonical({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [manifest_desc]})
    files = {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
    }
    for desc, data in ((config_desc, config), (layer_desc, wasm), (manifest_desc, manifest)):
        files["blobs/sha256/" + desc["digest"].split(":", 1)[1]] = data
    return files


def write_dir(files: dict[str, bytes], out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_tar(files: dict[str, bytes], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(name).parents[i]) for name in files for i in range(len(Path(name).parents) - 1)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    tmp.replace(out)


def cargo_version() -> str:
    for line in (REPO / "Cargo.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "0.0.0"


def main(argv: list[str] | None = None) -> int:
    version = cargo_version()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wasm", type=Path, default=REPO / "target/wasm32-wasip1/release/jwt_policy_filter.wasm")
    ap.add_argument("--out", type=Path, help="write the OCI layout directory here")
    ap.add_argument("--tar", type=Path, help="write the OCI layout as a tar (oci-archive) here")
    ap.add_argument("--tag", default=version, help=f"tag recorded in index.json (default: the crate version, {version})")
    args = ap.parse_args(argv)
    if not args.out and not args.tar:
        ap.error("give --out DIR and/or --tar FILE")
    wasm = args.wasm.read_bytes()
    files = build(wasm, args.tag, args.wasm.name, version)
    if args.out:
        write_dir(files, args.out)
    if args.tar:
        write_tar(files, args.tar)
    manifest = json.loads(files["index.json"])["manifests"][0]
    layer = json.loads(files["blobs/sha256/" + manifest["digest"].split(":", 1)[1]])["layers"][0]
    for where in filter(None, (args.out, args.tar)):
        print(f"wrote {where}")
    print(f"  tag {args.tag}, manifest {manifest['digest']}")
    print(f"  layer {layer['digest']} ({layer['size']} bytes, {WASM_LAYER_MEDIA_TYPE})")
    print(f"  WasmPlugin pin: url oci://REGISTRY/jwt-policy-filter@{manifest['digest']} (or sha256: "
          f"{manifest['digest'].split(':', 1)[1]} with a tag); for an https:// url, sha256: "
          f"{layer['digest'].split(':', 1)[1]} (the .wasm's own)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
