#!/usr/bin/env python3
"""Build the Inhabit Blender extension: one zip per Python of Blender, in ``dist/``.

Blender reads the Python versions an extension supports from its wheel file
names (a ``cp311-cp311`` wheel means 3.11; a ``cp312-abi3`` wheel means any
Python 3, but only when no wheel names a minor version). pyzmq ships cp311
wheels for Python 3.11 and abi3 wheels from 3.12 on, so one zip cannot serve
both: Blender would read "3.11 only" and 5.1+ would refuse it. Hence:

* ``inhabit-<version>-blender-4.2-to-5.0-python-3.11.zip``: Blender 4.2 LTS,
  4.5 LTS and 5.0 from blender.org (Python 3.11); ``blender_version_max`` 5.1.0.
* ``inhabit-<version>-blender-5.1-and-later-python-3.13.zip``: Blender 5.1,
  5.2 LTS, 5.3 (Python 3.13) and builds on Python 3.12+ such as Debian's
  4.3 (3.13) and 5.2 (3.14).

Each bundles pyzmq wheels for linux-x64, windows-x64, macos-arm64 and
macos-x64, downloaded once with ``pip download --only-binary=:all:`` into a
cache (``--offline`` uses only the cache), so nothing is pip-installed into
Blender at run time. ``build_info.json`` in each zip names the Pythons it
serves, so the add-on can say which file to take when it lands on another.

Usage: python build_addon.py [--offline] [--download-only] [--cache DIR] [--out DIR] [--no-wheels]
(--no-wheels builds a development zip that relies on a pyzmq already present,
as in the bpy test environment; it is never for users.)
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "blender_addon"
PYZMQ = "pyzmq==27.3.0"
BUILD_INFO = "build_info.json"


@dataclass(frozen=True)
class Flavour:
    """One zip: the CPython versions it serves and the Blender versions its manifest admits."""
    pythons: tuple[str, ...]     # "311", "313", ... (pip's --python-version without the dot)
    python_min: str              # the oldest Python its wheels load on ("3.12" for abi3 cp312)
    python_max: str | None       # the newest (None: any later Python 3)
    blender_min: str
    blender_max: str | None      # exclusive, as in Blender's manifest
    suffix: str                  # what users read in the file name

    def file_name(self, ext_id: str, version: str) -> str:
        return f"{ext_id}-{version}-{self.suffix}.zip"


FLAVOURS = (
    Flavour(("311",), "3.11", "3.11", "4.2.0", "5.1.0", "blender-4.2-to-5.0-python-3.11"),
    # From 4.2 on: distributions build 4.x against Python 3.13 too (Debian's 4.3).
    Flavour(("313", "314"), "3.12", None, "4.2.0", None, "blender-5.1-and-later-python-3.13"),
)
PYTHONS = tuple(sorted({py for f in FLAVOURS for py in f.pythons}))
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


def blender_python_versions(wheel_names: list[str]) -> set[str]:
    """The Python versions Blender reads from these wheel names ("3.11", or "3" for abi3 alone),
    as its extension builder does: an abi3 wheel says "3", dropped when any wheel names a minor."""
    major_only, major_minor = set(), set()
    for name in wheel_names:
        pytag, abi, _plat = _wheel_tags(os.path.basename(name))
        if abi == "abi3":
            major_only.add(pytag[2])
        elif re.fullmatch(r"cp3\d+", pytag):
            major_minor.add(f"3.{pytag[3:]}")
    return major_minor or major_only


def select_wheels(cache: Path, flavour: Flavour) -> list[Path]:
    """One wheel per (python, platform) of ``flavour`` from the cache; error naming any gap."""
    wheels = sorted(cache.glob("pyzmq-*.whl"))
    chosen, missing = set(), []
    version = PYZMQ.split("==")[1]
    for py in flavour.pythons:
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
            if any(_wheel_serves(w.name, py, platform) for w in cache.glob("pyzmq-*.whl")):
                continue
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
                   "--python-version", py, "--implementation", "cp", "--platform", tag, "-d", str(cache), PYZMQ]
            print("build_addon:", " ".join(cmd), file=sys.stderr)
            subprocess.run(cmd, check=True)


def validate_manifest(m: dict, *, wheel_names: list[str], flavour: Flavour | None = None) -> None:
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
    if m.get("blender_version_max") is not None and not re.fullmatch(r"\d+\.\d+\.\d+", m["blender_version_max"]):
        raise BuildError("manifest: blender_version_max must look like 5.1.0")
    if wheel_names and flavour is not None:
        for py in flavour.pythons:
            for platform in platforms:
                if not any(_wheel_serves(os.path.basename(w), py, platform) for w in wheel_names):
                    raise BuildError(f"manifest: no bundled wheel serves cp{py} on {platform}")
        # What Blender will read from the names must admit every Python this zip is for.
        read = blender_python_versions(wheel_names)
        for py in flavour.pythons:
            if f"3.{py[1:]}" not in read and "3" not in read:
                raise BuildError(f"manifest: Blender would read Python {sorted(read)} from the wheel names, "
                                 f"so it would refuse this zip on Python 3.{py[1:]}")


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


def build(*, out: Path, cache: Path, offline: bool, with_wheels: bool = True) -> list[Path]:
    """Every zip: one per flavour, or the single development zip (``with_wheels=False``)."""
    with open(SRC / "blender_manifest.toml", "rb") as fh:
        manifest = tomllib.load(fh)
    if not with_wheels:
        dev = dict(manifest, wheels=[])
        dev.pop("platforms", None)  # dev build: platform-independent, pyzmq from the host
        validate_manifest(dev, wheel_names=[])
        return [_write_zip(out / f"{manifest['id']}-{manifest['version']}-dev.zip", dev, [], None)]
    if not offline:
        download_wheels(cache)
    zips = []
    for flavour in FLAVOURS:
        wheels = select_wheels(cache, flavour)
        m = dict(manifest, platforms=list(PLATFORMS), blender_version_min=flavour.blender_min,
                 wheels=[f"./wheels/{w.name}" for w in wheels])
        m.pop("blender_version_max", None)
        if flavour.blender_max:
            m["blender_version_max"] = flavour.blender_max
        validate_manifest(m, wheel_names=[f"wheels/{w.name}" for w in wheels], flavour=flavour)
        zips.append(_write_zip(out / flavour.file_name(m["id"], m["version"]), m, wheels, flavour))
    return zips


def build_info(flavour: Flavour, version: str, ext_id: str) -> dict:
    """What the add-on reads at start-up to tell a user on another Python which file to take."""
    return {"python_min": flavour.python_min, "python_max": flavour.python_max, "file": flavour.suffix,
            "files": {f.suffix: {"python_min": f.python_min, "python_max": f.python_max,
                                 "name": f.file_name(ext_id, version)} for f in FLAVOURS}}


def _write_zip(zpath: Path, manifest: dict, wheels: list[Path], flavour: Flavour | None) -> Path:
    zpath.parent.mkdir(parents=True, exist_ok=True)
    tmp = zpath.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(SRC.rglob("*")):
            rel = path.relative_to(SRC).as_posix()
            if path.is_dir() or _excluded(rel) or rel in ("blender_manifest.toml", BUILD_INFO):
                continue
            z.write(path, rel)
        z.writestr("blender_manifest.toml", render_manifest(manifest))
        if flavour is not None:
            z.writestr(BUILD_INFO, json.dumps(build_info(flavour, manifest["version"], manifest["id"]), indent=1))
        for w in wheels:
            z.write(w, f"wheels/{w.name}")
    os.replace(tmp, zpath)
    return zpath


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--offline", action="store_true", help="use only wheels already in the cache")
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "wheel-cache")
    ap.add_argument("--out", type=Path, default=ROOT / "dist")
    ap.add_argument("--no-wheels", action="store_true", help="development zip without bundled pyzmq")
    ap.add_argument("--download-only", action="store_true", help="fill the wheel cache, build nothing")
    args = ap.parse_args(argv)
    try:
        if args.download_only:
            download_wheels(args.cache)
            return 0
        zips = build(out=args.out, cache=args.cache, offline=args.offline, with_wheels=not args.no_wheels)
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"build_addon: {exc}", file=sys.stderr)
        return 1
    for z in zips:
        print(z)
    return 0


if __name__ == "__main__":
    sys.exit(main())
