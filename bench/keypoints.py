"""Inhabit's keypoints against an independent estimator (BlazePose), before
and after the estimator convention, per joint and per character.

"before" projects the rig's own joints (bone heads, face offsets, the toe
bone); "after" is what the add-on sends (blender_addon/scene/keypoints.py).
Both come from the same renders, side by side in one run. Median offset, in
torso lengths, Inhabit minus BlazePose.

    python bench/keypoints.py                 # 5 cases, 4 frames, front and 45 degrees, 384 px
    python bench/keypoints.py --no-write      # print only
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.estimator import compare  # noqa: E402
from bench.estimator.renders import CASES  # noqa: E402


def table(records: list[dict], found: dict) -> str:
    cases = list(dict.fromkeys(r["case"] for r in records))
    views = sorted({r["view"] for r in records})
    cols = [(c, v) for c in cases for v in views]
    head = "| joint | target | " + " | ".join(f"{c}, {int(v)}°" for c, v in cols) + " |"
    rows = [head, "|---" * (len(cols) + 2) + "|"]
    cells = {}
    for c, v in cols:
        sel = [r for r in records if r["case"] == c and r["view"] == v]
        cells[c, v] = (compare.medians(sel, "before", found), compare.medians(sel, "after", found))
    for j in compare.JOINTS:
        target = f"≤ {compare.TARGETS[j]:.2f}" if j in compare.TARGETS else "reported"
        vals = [f"{cells[c, v][0][j]:.3f} → **{cells[c, v][1][j]:.3f}**" for c, v in cols]
        rows.append(f"| {j} | {target} | " + " | ".join(vals) + " |")
    rows.append("\nPer character, both views together (what tests/test_keypoint_estimator.py judges):\n")
    rows.append("| joint | target | " + " | ".join(cases) + " |")
    rows.append("|---" * (len(cases) + 2) + "|")
    pooled = {c: (compare.medians([r for r in records if r["case"] == c], "before", found),
                  compare.medians([r for r in records if r["case"] == c], "after", found)) for c in cases}
    for j in compare.JOINTS:
        target = f"≤ {compare.TARGETS[j]:.2f}" if j in compare.TARGETS else "reported"
        rows.append(f"| {j} | {target} | " + " | ".join(f"{pooled[c][0][j]:.3f} → **{pooled[c][1][j]:.3f}**"
                                                      for c in cases) + " |")
    n = sum(found.get(r["image"]) is not None for r in records)
    rows.append(f"\n{n} of {len(records)} images had a person found by BlazePose; cells: before → **after**.")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from bench.estimator.renders import render_case
    with tempfile.TemporaryDirectory(prefix="inhabit-estimator-") as tmp:
        records = []
        for name in args.cases:
            records += render_case(name, tmp, frames=args.frames, size=args.size)
        found = compare.run_blazepose([r["image"] for r in records])
    text = table(records, found)
    print(text)
    if not args.no_write:
        from bench.results_file import write_section
        write_section("keypoints", "## keypoints against BlazePose (bench/keypoints.py)\n\n"
                      f"{args.frames} frames per character, front (0°) and at 45° of its facing, {args.size} px "
                      "workbench renders, the character 80% of the height. Median offset in torso lengths "
                      "(BlazePose's shoulder midpoint to hip midpoint), Inhabit minus BlazePose; each left/right "
                      "chain compared in the side assignment that fits best (BlazePose often reads a faceless "
                      "figure as seen from behind). Hips are reported only: BlazePose's hips are not COCO's "
                      "(docs/keypoints.md). \"before\" is the rig's own joints on the same renders (the neck bone, "
                      "face points derived from the head bone or fitted on every head vertex, hair included, the toe "
                      "bone); the demo character has a face (eyes, a nose, a mouth) and shoulders across the top of "
                      "a chest narrower than them in both columns (docs/keypoints.md has what its ball-shaped chest "
                      "and dots-for-eyes face measured). The Red Eclipse player (tests/assets, the any-unit case of "
                      "`inhabit demo --character`) is an armoured figure with a helmet for a head: reported, not "
                      "judged (BlazePose reads its armour plates and guesses a face on the helmet).\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
