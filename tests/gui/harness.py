"""`make test-gui`: the add-on in real Blender windows (Debian's 4.3 and 5.2 LTS, in chroots under
Xvfb), used through its panel by real clicks, against a real ``inhabit serve --engine preview``.

    .venv/bin/python -m tests.gui.harness [--blender trixie,sid] [--scenarios a,b] [--out build/test-gui]

For each Blender: build the extension zip for its Python, install it with Blender's own
``extension install-file``, build the test scene in that Blender, start the server outside the chroot
on 127.0.0.1 (the chroot shares the network), open the window with tests/gui/agent.py, which clicks
through the scenarios and writes a report; then print pass/fail per scenario per Blender. Screenshots
land in OUT/<distribution>/. Needs root (chroot); the chroots are built on first use by
tests/gui/chroots.sh (minutes, ~1.5 GB each, cached outside the repository).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from backend.cli.local_server import LocalServer, free_loopback_port

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROOTS = HERE / "chroots.sh"
SCREEN = (1600, 1800)
FRAMES = 12
SIZE = 128
SCENARIOS = ("connect", "defaults", "no-reference", "dead-server", "cancel", "load-mid-job")
# Which zip each Blender takes: the one for its Python (build_addon.py names them by Python).
BLENDERS = {"trixie": ("4.3", "python-3.13"), "sid": ("5.2", "python-3.13")}
# What the scene builder imports inside the chroot: the suite's own scene and the project's Blender tools.
SCENE_SOURCES = ("tests/__init__.py", "tests/blender_scene.py", "backend/__init__.py", "backend/blender")


@dataclass
class Stage:
    dist: str
    root: Path      # under /tmp, which the chroot sees at the same path
    results: Path   # screenshots and the report, on the host
    frames: int = FRAMES  # the shot's length

    @property
    def home(self) -> Path:
        return self.root / "home"


def chroot(dist: str, *argv: str, env: dict | None = None, timeout: float = 900, log: Path | None = None
           ) -> subprocess.CompletedProcess:
    envs = [f"{k}={v}" for k, v in (env or {}).items()]
    cmd = [str(CHROOTS), "run", dist, "env", *envs, *argv]
    out = open(log, "w") if log else subprocess.PIPE
    try:
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    finally:
        if log:
            out.close()


def build_chroots(dists) -> None:
    for dist in dists:
        subprocess.run([str(CHROOTS), "build", dist], check=True)


def build_zips() -> dict[str, Path]:
    subprocess.run([sys.executable, str(REPO / "build_addon.py")], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return {z.stem: z for z in (REPO / "dist").glob("inhabit-*.zip")}


def zip_for(dist: str, zips: dict[str, Path]) -> Path:
    tag = BLENDERS[dist][1]
    found = [z for stem, z in zips.items() if stem.endswith(tag)]
    if len(found) != 1:
        raise SystemExit(f"build_addon.py made no single zip ending in {tag!r}: {sorted(zips)}")
    return found[0]


def prepare(dist: str, zip_path: Path, server_address: str, out: Path, frames: int = FRAMES) -> Stage:
    """A fresh user folder with the extension installed, and the scene saved by this Blender."""
    stage = Stage(dist, Path("/tmp/inhabit-gui") / dist, out / dist, frames)
    shutil.rmtree(stage.root, ignore_errors=True)
    shutil.rmtree(stage.results, ignore_errors=True)
    (stage.root / "results").mkdir(parents=True)
    stage.home.mkdir()
    stage.results.mkdir(parents=True)
    for rel in SCENE_SOURCES:
        dest = stage.root / "src" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / rel).is_dir():
            shutil.copytree(REPO / rel, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / rel, dest)
    for name in ("agent.py", "make_scene.py", "headless_job.py"):
        shutil.copy(HERE / name, stage.root / name)
    shutil.copy(zip_path, stage.root / zip_path.name)
    env = {"HOME": stage.home}
    done = chroot(dist, "blender", "--command", "extension", "install-file", "-r", "user_default", "-e",
                  str(stage.root / zip_path.name), env=env, timeout=300)
    (stage.results / "install.log").write_text(done.stdout)
    if done.returncode != 0 or "ERROR" in done.stdout or "Error" in done.stdout:
        raise RuntimeError(f"{zip_path.name} did not install on {dist}:\n{done.stdout[-2000:]}")
    done = chroot(dist, "blender", "-b", "--python", str(stage.root / "make_scene.py"), "--",
                  str(stage.root), server_address, str(frames), str(SIZE), env=env, timeout=300)
    (stage.results / "scene.log").write_text(done.stdout)
    if "INHABIT-SCENE-SAVED" not in done.stdout:
        raise RuntimeError(f"the test scene was not built on {dist}:\n{done.stdout[-3000:]}")
    return stage


def run_window(stage: Stage, scenarios, *, dead_address: str, bench_runs: int = 3, timeout: float = 900,
               **options) -> dict:
    """Open the window on the shot, let agent.py work through ``scenarios``; its report, with the screenshots
    copied to ``stage.results``."""
    config = {"results": str(stage.root / "results"), "scenarios": list(scenarios), "frames": stage.frames,
              "dead_server": dead_address, "ui_blend": str(stage.root / "shot_ui.blend"), "bench_runs": bench_runs,
              **options}
    cfg = stage.root / "config.json"
    cfg.write_text(json.dumps(config))
    env = {"HOME": stage.home, "LIBGL_ALWAYS_SOFTWARE": "1"}
    w, h = SCREEN
    t0 = time.monotonic()
    done = chroot(stage.dist, "xvfb-run", "-a", "-s", f"-screen 0 {w}x{h}x24", "blender",
                  str(stage.root / "shot.blend"), "--window-geometry", "0", "0", str(w), str(h),
                  "--python", str(stage.root / "agent.py"), "--", str(cfg), env=env, timeout=timeout,
                  log=stage.results / "blender.log")
    report_path = stage.root / "results" / "report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
    else:
        report = {"crash": f"Blender exited with {done.returncode} after {time.monotonic() - t0:.0f} s without a "
                           f"report; see {stage.results / 'blender.log'}", "scenarios": []}
    for png in sorted((stage.root / "results").glob("*.png")):
        shutil.copy(png, stage.results / png.name)
    for sc in report.get("scenarios", []):
        sc["screenshots"] = [str(stage.results / Path(p).name) for p in sc.get("screenshots", [])]
    (stage.results / "report.json").write_text(json.dumps(report, indent=1))
    return report


def run_headless(stage: Stage, runs: int) -> dict:
    out = stage.root / "headless.json"
    done = chroot(stage.dist, "blender", "-b", str(stage.root / "shot.blend"), "--python",
                  str(stage.root / "headless_job.py"), "--", str(runs), str(out), env={"HOME": stage.home},
                  timeout=900)
    (stage.results / "headless.log").write_text(done.stdout)
    if not out.exists():
        raise RuntimeError(f"the headless job wrote nothing:\n{done.stdout[-3000:]}")
    return json.loads(out.read_text())


class Server:
    """``inhabit serve --engine preview`` on loopback, outside the chroots; its log kept with the results."""

    def __init__(self, log_path: Path):
        self.server = LocalServer(("preview",), log_path=str(log_path))

    def __enter__(self) -> str:
        self.server.start()
        self.server.wait_ready(60)
        return self.server.address

    def __exit__(self, *exc) -> None:
        self.server.stop()


def summary(reports: dict[str, dict]) -> tuple[str, bool]:
    lines, all_ok = [], True
    for dist, report in reports.items():
        name = f"Blender {report.get('blender', BLENDERS[dist][0])} ({dist})"
        if report.get("crash"):
            lines.append(f"{name}: FAIL (the harness stopped: {report['crash'].strip().splitlines()[-1]})")
            all_ok = False
        for sc in report.get("scenarios", []):
            failed = [c for c in sc["checks"] if not c["ok"]]
            all_ok &= not failed
            measures = ", ".join(f"{k} {v}" for k, v in sc.get("measures", {}).items())
            lines.append(f"{name:32} {sc['name']:16} {'PASS' if not failed else 'FAIL'}  "
                         f"{len(sc['checks']) - len(failed)}/{len(sc['checks'])} checks"
                         + (f"  [{measures}]" if measures else ""))
            for c in failed:
                lines.append(f"    FAIL {c['what']}: {c['detail'][:300]}")
    return "\n".join(lines), all_ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blender", default="trixie,sid", help="chroots to run: trixie (4.3), sid (5.2)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--out", default=str(REPO / "build" / "test-gui"))
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("make test-gui needs root (debootstrap, chroot, mount).", file=sys.stderr)
        return 2
    dists = [d for d in args.blender.split(",") if d]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    build_chroots(dists)
    zips = build_zips()
    reports = {}
    with Server(out / "server.log") as address:
        dead = f"tcp://127.0.0.1:{free_loopback_port()}"
        for dist in dists:
            print(f"== Blender {BLENDERS[dist][0]} ({dist}): {zip_for(dist, zips).name}", flush=True)
            try:
                stage = prepare(dist, zip_for(dist, zips), address, out)
                reports[dist] = run_window(stage, args.scenarios.split(","), dead_address=dead)
            except Exception as exc:
                reports[dist] = {"crash": f"{type(exc).__name__}: {exc}", "scenarios": []}
    text, ok = summary(reports)
    (out / "summary.txt").write_text(text + "\n")
    print("\n== make test-gui summary (screenshots in " + str(out) + ")")
    print(text)
    print("make test-gui: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
