"""An independent check of the keypoints Inhabit sends: BlazePose (mediapipe
0.10.14's bundled model, in its own venv, `make pose-venv`) on renders of
the test characters, front and at 45 degrees, the character ~300 px tall.

Per character, over both views and every frame, the median offset
(Inhabit minus BlazePose, in torso lengths) meets the targets of
bench/estimator/compare.TARGETS; hips are reported, not judged (BlazePose's
hips are its own convention). The full before/after table is bench/keypoints.py's.
"""
from __future__ import annotations

import numpy as np
import pytest

import bpy  # noqa: F401  (a required test dependency: missing bpy must fail, not skip)

from bench.estimator import compare
from bench.estimator.renders import render_case

CASES = ("demo, short hair", "demo, long hair", "BCN_Epileptic, CMU walk")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("estimator")
    records = []
    for name in CASES:
        records += render_case(name, str(out), frames=4, size=384)
    found = compare.run_blazepose([r["image"] for r in records])
    return records, found


@pytest.mark.parametrize("case", CASES)
def test_keypoints_sit_where_the_estimator_sees_them(measured, case):
    records, found = measured
    mine = [r for r in records if r["case"] == case]
    seen = [r for r in mine if found.get(r["image"]) is not None]
    assert len(seen) >= len(mine) - 1, f"BlazePose found the character in only {len(seen)} of {len(mine)} images"
    after = compare.medians(mine, "after", found)
    before = compare.medians(mine, "before", found)
    report = ", ".join(f"{j} {before[j]:.3f}->{after[j]:.3f}" for j in compare.JOINTS)
    for joint, target in compare.TARGETS.items():
        assert after[joint] <= target, f"{case}: {joint} {after[joint]:.3f} > {target} ({report})"
    # The rig's neck bone sits well above the estimators' neck; the shoulder midpoint does not.
    assert after["neck"] < 0.6 * before["neck"], report
    assert np.isfinite(after["hips"]), report
