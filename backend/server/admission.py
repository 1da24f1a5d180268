"""What the socket loop checks before a job or a frame is let in.

Pure checks on decoded messages, run on the socket thread: each raises
``protocol.ProtocolError`` naming the field, so the loop answers with one
ERROR and keeps serving. The engine's own ``validate`` runs here too, on the
server's unloaded validator instance (construction is cheap by contract).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from backend.server.engines.base import AdmittedJob, Engine, EngineInputError
from blender_addon.core import conventions, protocol


@dataclass
class Admission:
    """A SUBMIT that passed every check: the engine, the job, its flow control."""
    engine_cls: type[Engine]
    job: AdmittedJob
    window: int          # frames the client may have in flight (the input window)
    start_after: int     # frames to hold before a worker takes the job


def admit_submit(hdr: dict, arrays: dict, *, engine_classes: dict, validators: dict, limits: dict) -> Admission:
    spec = protocol.JobSpec.from_header(hdr, limits)
    cls = engine_classes.get(spec.engine)
    if cls is None:
        raise protocol.ProtocolError(protocol.E_UNKNOWN_ENGINE, f"unknown engine {protocol.echo(spec.engine)}; "
                                     f"this server runs {sorted(engine_classes)}", field="submit.engine")
    params = protocol.validate_params((*protocol.COMMON_PARAMS, *cls.params), spec.params)
    extra = sorted(set(arrays) - {protocol.REFERENCE, protocol.REFERENCE_KEYPOINTS})
    if extra:
        raise protocol.ProtocolError(protocol.E_BAD_BUFFERS, f"submit carries unknown buffer "
                                     f"{protocol.echo(extra[0])}; expected {protocol.REFERENCE!r} and optionally "
                                     f"{protocol.REFERENCE_KEYPOINTS!r}",
                                     field=f"buffers.{protocol.clip(extra[0])}")
    reference = arrays.get(protocol.REFERENCE)
    if reference is not None:
        protocol.check_reference(reference, max_pixels=limits["max_reference_pixels"])
        check_reference_content(reference)
    elif cls.needs_reference:
        raise protocol.ProtocolError(protocol.E_MISSING_INPUT, f"engine {cls.name!r} needs a reference image "
                                     f"buffer named {protocol.REFERENCE!r}", field=f"submit.{protocol.REFERENCE}")
    ref_kp = arrays.get(protocol.REFERENCE_KEYPOINTS)
    if ref_kp is not None:
        protocol.check_reference_keypoints(ref_kp)
    elif cls.needs_reference_keypoints:
        hint = f" {cls.reference_keypoints_hint}" if cls.reference_keypoints_hint else ""
        raise protocol.ProtocolError(protocol.E_MISSING_INPUT, f"engine {cls.name!r} needs the reference's "
                                     f"keypoints: send a float32 [{conventions.NUM_KEYPOINTS}, 4] buffer named "
                                     f"{protocol.REFERENCE_KEYPOINTS!r} (x, y in reference-image pixels){hint}",
                                     field=f"submit.{protocol.REFERENCE_KEYPOINTS}")
    job = AdmittedJob(job_id=secrets.token_hex(8), engine=cls.name, width=spec.width, height=spec.height,
                      frames=spec.frames, params=params, objects=list(spec.objects),
                      reference=None if reference is None else reference.copy(),
                      reference_keypoints=None if ref_kp is None else ref_kp.copy(), name=spec.name)
    validator = validators[cls.name]
    try:
        validator.validate(job)
    except EngineInputError as exc:
        raise protocol.ProtocolError(protocol.E_BAD_PARAM, str(exc), field=exc.field) from None
    # Streaming engines keep a sliding window; the others need every frame before they start.
    window = max(1, int(cls.input_window)) if cls.streaming else spec.frames
    # Never more than the credit, or the job would wait for frames the client may not send.
    start_after = min(window, spec.frames, max(1, int(validator.frames_to_start(job))))
    return Admission(cls, job, window, start_after)


def check_reference_content(reference) -> None:
    """A reference with nothing in it -- fully transparent, or black wherever it
    is visible -- holds no character for any engine to generate."""
    where = f"submit.{protocol.REFERENCE}"
    if reference.shape[2] == 4 and not reference[..., 3].any():
        raise protocol.ProtocolError(protocol.E_BAD_PARAM, f"{where} is fully transparent: send an image of the "
                                     "character (opaque where the character is)", field=where)
    visible = reference[..., :3] if reference.shape[2] == 3 else reference[..., :3][reference[..., 3] > 0]
    if not visible.any():
        raise protocol.ProtocolError(protocol.E_BAD_PARAM, f"{where} is all black: send an image of the character",
                                     field=where)


def check_frame(job, hdr: dict, arrays: dict) -> int:
    """Check one FRAME of ``job`` (a ``ServerJob``); return its index.

    The one check of frame inputs: buffers against the protocol's table, then
    the engine's declared ``required_inputs``. Engines and pipelines receive
    frames that passed it."""
    d = job.data
    index = hdr.get("index")

    def err(code, msg, fld="frame.index"):
        return protocol.ProtocolError(code, msg, field=fld, job=job.id)

    if isinstance(index, bool) or not isinstance(index, int):
        raise err(protocol.E_BAD_INDEX, f"frame.index must be an integer, got {index!r}")
    if not 0 <= index < d.frames:
        raise err(protocol.E_BAD_INDEX, f"frame index {index} is outside 0..{d.frames - 1} "
                  f"(the job declared {d.frames} frames)")
    if job.input_ended:
        raise err(protocol.E_BAD_INDEX, f"frame {index} arrived after end_input")
    if index in job.received:
        raise err(protocol.E_DUPLICATE_FRAME, f"frame {index} was already sent")
    if index >= job.credit:
        raise err(protocol.E_WINDOW_EXCEEDED, f"frame {index} is beyond the granted credit (< {job.credit}); "
                  f"wait for a CREDIT message")
    protocol.check_frame_inputs(arrays, height=d.height, width=d.width, n_objects=len(d.objects), job=job.id)
    required = job.engine_cls.required_inputs
    missing = [n for n in required if n not in arrays]
    if missing:
        raise err(protocol.E_MISSING_INPUT, f"frame {index} lacks required input {missing[0]!r} for engine "
                  f"{d.engine!r} (required: {list(required)})", f"frame.{missing[0]}")
    return index


def ranges(indices) -> str:
    """[0,1,2,5] -> '0-2, 5' (short messages for long shots)."""
    out: list[str] = []
    start = prev = -1
    for i in indices:
        if start < 0:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(f"{start}-{prev}" if prev > start else str(start))
            start = prev = i
    if start >= 0:
        out.append(f"{start}-{prev}" if prev > start else str(start))
    text = ", ".join(out[:8])
    return text + (", ..." if len(out) > 8 else "")
