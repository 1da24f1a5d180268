#!/usr/bin/env python3
"""Build the Inhabit Blender extension: ``dist/inhabit-<version>.zip``.

* copies ``blender_addon/`` (with the shared wire protocol in ``core/``),
* bundles pyzmq wheels for Python 3.11 (Blender 4.2-5.0) and 3.13 (5.1+) on
  linux-x64, windows-x64, macos-arm64 and macos-x64, downloaded once with
  ``pip download --only-binary=:all:`` into a cache (``--offline`` uses only
  the cache), so nothing is pip-installed into Blender at run time,
* writes their paths into ``blender_manifest.toml`` and validates it.

Usage: python build_addon.py [--offline] [--cache DIR] [--out DIR] [--no-wheels]
(--no-wheels builds a development zip that relies on a pyzmq already present,
as in the bpy test environment; it is never for users.)
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "blender_addon"
PYZMQ = "pyzmq==27.3.0"
PYTHONS = ("311", "313")
# Blender platform -> pip --platform tag (pip also accepts older compatible wheels).
PLATFORMS = {
    "linux-x64": "manylinux_2_28_x86_64",
    "windows-x64": "win_amd64",
    "macos-arm64": "macosx_11_0_arm64",
    "macos-x64": "macosx_10_15_x86_64",
}
# Which wheel platform tags satisfy which Blender platform.
_WHEEL_PLATFORM = {
    "linux-x64": re.compile(r"manylinux.*_x86_64|linux_x86_64"),
    "windows-x64": re.compile(r"win_amd64"),
    "macos-arm64": re.compile(r"macosx_\d+_\d+_(arm64|universal2)"),
    "macos-x64": re.compile(r"macosx_\d+_\d+_(x86_64|universal2)"),
}
EXCLUDE = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")
PERMISSIONS = {"files", "network", "clipboard", "camera", "microphone"}


class BuildError(RuntimeError):
    pass


def _wheel_tags(name: str) -> tuple[str, str, str]:
    parts = name[:-4].split("-")
    return parts[-3], parts[-2], parts[-1]  # python, abi, platform


def _wheel_serves(name: str, py: str, platform: str) -> bool:
    pytag, abi, plat = _wheel_tags(name)
    if pytag == f"cp{py}":
        py_ok = True
    elif abi == "abi3":  # stable ABI: any CPython at or after the tag's version
        py_ok = int(pytag[2:]) <= int(py)
    else:
        py_ok = False
    return py_ok and any(_WHEEL_PLATFORM[platform].search(p) for p in plat.split("."))


def select_wheels(cache: Path) -> list[Path]:
    """One wheel per (python, platform) from the cache; error naming any gap."""
    wheels = sorted(cache.glob("pyzmq-*.whl"))
    chosen, missing = set(), []
    version = PYZMQ.split("==")[1]
    for py in PYTHONS:
        for platform in PLATFORMS:
            match = [w for w in wheels if f"-{version}-" in w.name and _wheel_serves(w.name, py, platform)]
            # Prefer the exact CPython build over abi3 when both exist.
            match.sort(key=lambda w: (_wheel_tags(w.name)[0] != f"cp{py}", w.name))
            if match:
                chosen.add(match[0])
            else:
                missing.append(f"cp{py}/{platform}")
    if missing:
        raise BuildError(f"no {PYZMQ} wheel in {cache} for {', '.join(missing)}; "
                         "run without --offline to download them")
    return sorted(chosen)


def download_wheels(cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for py in PYTHONS:
        for platform, tag in PLATFORMS.items():
            try:
                select_wheels_for = [w for w in cache.glob("pyzmq-*.whl") if _wheel_serves(w.name, py, platform)]
            except Exception:
                select_wheels_for = []
            if select_wheels_for:
                continue
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
                   "--python-version", py, "--implementation", "cp", "--platform", tag, "-d", str(cache), PYZMQ]
            print("build_addon:", " ".join(cmd), file=sys.stderr)
            subprocess.run(cmd, check=True)


def validate_manifest(m: dict, *, wheel_names: list[str]) -> None:
    """The checks Blender's extension builder applies that we can make offline."""
    def need(key, kind):
        if not isinstance(m.get(key), kind):
            raise BuildError(f"manifest: {key!r} must be a {kind.__name__}, got {m.get(key)!r}")
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min"):
        need(key, str)
    need("license", list)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", m["id"]):
        raise BuildError(f"manifest: id {m['id']!r} must be a lowercase Python identifier")
    if not re.fullmatch(r"\d+\.\d+\.\d+", m["version"]):
        raise BuildError(f"manifest: version {m['version']!r} must be semantic (1.2.3)")
    if m["type"] != "add-on":
        raise BuildError("manifest: type must be 'add-on'")
    if len(m["tagline"]) > 64 or m["tagline"][-1] in ".!?,;:":
        raise BuildError("manifest: tagline must be at most 64 characters, without trailing punctuation")
    if not re.fullmatch(r"\d+\.\d+\.\d+", m["blender_version_min"]):
        raise BuildError("manifest: blender_version_min must look like 4.2.0")
    perms = m.get("permissions", {})
    for key, reason in perms.items():
        if key not in PERMISSIONS:
            raise BuildError(f"manifest: unknown permission {key!r}; Blender knows {sorted(PERMISSIONS)}")
        if not isinstance(reason, str) or not reason or len(reason) > 64 or reason[-1] in ".!?,;:":
            raise BuildError(f"manifest: permission {key!r} needs a reason of at most 64 characters, "
                             "without trailing punctuation")
    for key in ("network", "files"):
        if key not in perms:
            raise BuildError(f"manifest: the add-on needs the {key!r} permission, with a reason")
    platforms = m.get("platforms", [])
    if not set(platforms) <= set(PLATFORMS):
        raise BuildError(f"manifest: platforms {platforms} must be among {sorted(PLATFORMS)}")
    listed = [w.removeprefix("./") for w in m.get("wheels", [])]
    if sorted(listed) != sorted(wheel_names):
        raise BuildError(f"manifest: wheels {listed} do not match the bundled files {wheel_names}")
    if wheel_names:
        for py in PYTHONS:
            for platform in platforms:
                if not any(_wheel_serves(os.path.basename(w), py, platform) for w in wheel_names):
                    raise BuildError(f"manifest: no bundled wheel serves cp{py} on {platform}")


def _toml_value(v) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(v)


def render_manifest(m: dict) -> str:
    """Write the manifest back as TOML (flat keys, then the tables)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in m.items() if not isinstance(v, dict)]
    for table, body in m.items():
        if isinstance(body, dict):
            lines += ["", f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def _excluded(rel: str) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in rel.split("/") for pat in EXCLUDE)


def build(*, out: Path, cache: Path, offline: bool, with_wheels: bool = True) -> Path:
    with open(SRC / "blender_manifest.toml", "rb") as fh:
        manifest = tomllib.load(fh)
    wheels: list[Path] = []
    if with_wheels:
        if not offline:
            download_wheels(cache)
        wheels = select_wheels(cache)
        manifest["platforms"] = list(PLATFORMS)
    else:
        manifest.pop("platforms", None)  # dev build: platform-independent, pyzmq from the host
    wheel_names = [f"wheels/{w.name}" for w in wheels]
    manifest["wheels"] = [f"./{n}" for n in wheel_names]
    validate_manifest(manifest, wheel_names=wheel_names)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if with_wheels else "-dev"
    zpath = out / f"{manifest['id']}-{manifest['version']}{suffix}.zip"
    tmp = zpath.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(SRC.rglob("*")):
            rel = path.relative_to(SRC).as_posix()
            if path.is_dir() or _excluded(rel) or rel == "blender_manifest.toml":
                continue
            z.write(path, rel)
        z.writestr("blender_manifest.toml", render_manifest(manifest))
        for w, name in zip(wheels, wheel_names):
            z.write(w, name)
    os.replace(tmp, zpath)
    return zpath


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--offline", action="store_true", help="use only wheels already in the cache")
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "wheel-cache")
    ap.add_argument("--out", type=Path, default=ROOT / "dist")
    ap.add_argument("--no-wheels", action="store_true", help="development zip without bundled pyzmq")
    args = ap.parse_args(argv)
    try:
        z = build(out=args.out, cache=args.cache, offline=args.offline, with_wheels=not args.no_wheels)
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"build_addon: {exc}", file=sys.stderr)
        return 1
    print(z)
    return 0


if __name__ == "__main__":
    sys.exit(main())
