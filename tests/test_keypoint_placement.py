"""SUBMIT's keypoint_placement: this add-on says "estimator"; an older client, which
leaves it out, sent rig joints and gets its neck moved between its shoulders."""
from __future__ import annotations

import numpy as np
import pytest

from backend.server.admission import admit_submit, check_frame
from backend.server.job import ServerJob
from blender_addon.core import conventions, protocol
from tests.engines_for_tests import EchoEngine

W = H = 64


def _keypoints() -> np.ndarray:
    kp = np.zeros((conventions.NUM_KEYPOINTS, 4), np.float32)
    for name, (x, y) in {"neck": (32, 10), "left_shoulder": (40, 20), "right_shoulder": (24, 22)}.items():
        kp[conventions.KEYPOINT_INDEX[name]] = (x, y, 3.0, 1.0)
    return kp


def _admit(hdr: dict):
    arrays = {protocol.REFERENCE: np.full((H, W, 3), 140, np.uint8), protocol.REFERENCE_KEYPOINTS: _keypoints()}
    return admit_submit(hdr, arrays, engine_classes={"echo": EchoEngine}, validators={"echo": EchoEngine()},
                        limits=protocol.DEFAULT_LIMITS)


def _frame(adm) -> dict:
    job = ServerJob(adm.job, b"client", adm.engine_cls, adm.window, adm.start_after)
    arrays = {"environment": np.zeros((H, W, 3), np.uint8), "character_mask": np.zeros((H, W), np.uint8),
              "keypoints": _keypoints()}
    check_frame(job, protocol.header(protocol.FRAME, job=adm.job.job_id, index=0), arrays)
    return arrays


def test_this_client_says_estimator_and_its_points_pass_unchanged():
    hdr = protocol.JobSpec("echo", W, H, frames=1).to_header()
    assert hdr["keypoint_placement"] == "estimator"
    adm = _admit(hdr)
    assert np.array_equal(adm.job.reference_keypoints, _keypoints())
    assert np.array_equal(_frame(adm)["keypoints"], _keypoints())


def test_an_older_client_gets_its_neck_between_its_shoulders():
    hdr = protocol.JobSpec("echo", W, H, frames=1).to_header()
    del hdr["keypoint_placement"]
    adm = _admit(hdr)
    assert adm.job.keypoint_placement == "rig"
    neck = conventions.KEYPOINT_INDEX["neck"]
    for kp in (adm.job.reference_keypoints, _frame(adm)["keypoints"]):
        assert tuple(kp[neck]) == (32.0, 21.0, 3.0, 1.0)
        others = [i for i in range(conventions.NUM_KEYPOINTS) if i != neck]
        assert np.array_equal(kp[others], _keypoints()[others])


def test_an_unknown_placement_is_refused_naming_the_field():
    hdr = {**protocol.JobSpec("echo", W, H, frames=1).to_header(), "keypoint_placement": "bones"}
    with pytest.raises(protocol.ProtocolError, match="keypoint_placement must be one of") as e:
        _admit(hdr)
    assert e.value.field == "submit.keypoint_placement"
