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
SHOTS = {"idle": ("connect-connected", False), "running": ("cancel-running", False),
         "done": ("defaults-sequencer", True), "error": ("no-reference-error", False)}
MAX_BYTES = 300_000


def sidebar(img: Image.Image, report: dict, height: int) -> Image.Image:
    x, y, w, _h = report["scenarios"][0]["measures"]["sidebar"]
    return img.crop((x, max(0, y - 40), x + w, min(img.size[1], y + height)))


def with_sequencer(img: Image.Image, report: dict) -> Image.Image:
    """The panel's top (status, result) above the Sequencer editor's first channels, where the strip is."""
    top = sidebar(img, report, 330)
    x, y, w, h = report["scenarios"][0]["measures"]["sequencer"]
    strip = img.crop((x, y + h - 190, x + w, y + h))
    strip = strip.resize((top.size[0], strip.size[1] * top.size[0] // strip.size[0]))
    both = Image.new("RGB", (top.size[0], top.size[1] + 6 + strip.size[1]), (24, 24, 24))
    both.paste(top, (0, 0))
    both.paste(strip, (0, top.size[1] + 6))
    return both


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=str(REPO / "build" / "test-gui"))
    ap.add_argument("--blender", default="sid")
    args = ap.parse_args(argv)
    folder = Path(args.run) / args.blender
    report = json.loads((folder / "report.json").read_text())
    out = REPO / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    for name, (label, with_seq) in SHOTS.items():
        found = sorted(folder.glob(f"*-{label}.png"))
        if not found:
            print(f"no screenshot {label!r} in {folder}")
            continue
        img = Image.open(found[-1]).convert("RGB")
        img = with_sequencer(img, report) if with_seq else sidebar(img, report, 760)
        dest = out / f"addon-{name}.png"
        img.quantize(colors=64).save(dest, optimize=True)
        size = dest.stat().st_size
        print(f"{dest.relative_to(REPO)}: {img.size[0]}x{img.size[1]}, {size // 1024} KB")
        if size > MAX_BYTES:
            raise SystemExit(f"{dest} is {size} bytes: over {MAX_BYTES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
