"""Copy the documentation's screenshots out of a `make test-gui` run: the Inhabit sidebar (and, for the
finished shot, the Sequencer beside it), cropped and reduced to a palette so each stays small.

    .venv/bin/python -m tests.gui.doc_shots [--run build/test-gui] [--blender sid]

Writes docs/img/addon-{idle,running,done,error}.png (docs/addon.md shows them).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
# doc name -> (screenshot label written by agent.py, include the Sequencer column)
SHOTS = {"idle": ("connect-connected", False), "running": ("defaults-running", False),
         "done": ("defaults-sequencer", True), "error": ("no-reference-error", False)}
MAX_BYTES = 300_000


def crop_box(report: dict, with_sequencer: bool, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = report["scenarios"][0]["measures"]["sidebar"]
    bottom = min(size[1], y + 1000)
    return (x, y - 40, size[0] if with_sequencer else x + w, bottom)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=str(REPO / "build" / "test-gui"))
    ap.add_argument("--blender", default="sid")
    args = ap.parse_args(argv)
    folder = Path(args.run) / args.blender
    report = json.loads((folder / "report.json").read_text())
    out = REPO / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    for name, (label, with_sequencer) in SHOTS.items():
        found = sorted(folder.glob(f"*-{label}.png"))
        if not found:
            print(f"no screenshot {label!r} in {folder}")
            continue
        img = Image.open(found[-1]).convert("RGB")
        img = img.crop(crop_box(report, with_sequencer, img.size))
        dest = out / f"addon-{name}.png"
        img.quantize(colors=64).save(dest, optimize=True)
        size = dest.stat().st_size
        print(f"{dest.relative_to(REPO)}: {img.size[0]}x{img.size[1]}, {size // 1024} KB")
        if size > MAX_BYTES:
            raise SystemExit(f"{dest} is {size} bytes: over {MAX_BYTES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
