"""The engine contract, checked on every registered engine and on the recipe's.

Each engine runs in process through the server's own ``WorkerContext`` (the
one a worker gives it) over a ``ServerJob`` holding every frame, with the tiny
weight folders of ``inhabit doctor --save-tiny`` for the engines with a model.
Checked for each:

* its declarations (inputs, params, options, windows, hooks);
* every frame emitted exactly once, with the shapes the wire carries;
* cancel within one step: asked for while the engine reports a step, it stops
  before reporting another;
* ``validate`` errors carrying the field they are about;
* a resume, planned by the add-on's own ``resume.plan`` from the engine's INFO
  entry, restarting where ``restart_window`` says: at a point where the
  engine's own run released its inputs (a window start), keeping the
  interrupted run's frames before it (equal to an uninterrupted run's), and
  generating from there what an uninterrupted job from that point generates
  -- for engines whose frames are independent, exactly the uninterrupted
  run's frames.
"""
from __future__ import annotations

import json
import types
from dataclasses import dataclass, field

import numpy as np
import pytest

from backend.server.engines import registry
from backend.server.engines.base import AdmittedJob, Engine, EngineInputError, JobCancelled
from backend.server.job import ServerJob, WorkerContext
from blender_addon.core import protocol, resume
from models.aa2.tiny import tiny_inputs
from tests.test_architecture_recipe import recipe_code
from tests.test_preview_figures import figure

SIZE = 64
INPUT_NAMES = set(protocol.FRAME_INPUTS)


@dataclass
class Case:
    """How to run one engine small: its params, shot length, where to interrupt it,
    and one job its ``validate`` must refuse (with the field it must name)."""
    frames: int
    params: dict
    interrupt_after: int
    bad: tuple[dict, str]                 # (AdmittedJob overrides or params, field)
    weights: str | None = None            # engine name for tiny_weights
    extra: dict = field(default_factory=dict)


CASES = {
    "preview": Case(frames=5, params={}, interrupt_after=2,
                    bad=({"reference_keypoints": np.zeros((18, 4), np.float32)}, "submit.reference_keypoints")),
    "aa2": Case(frames=7, params={"steps": 1, "guidance": 1.0, "context_frames": 4, "overlap": 1},
                interrupt_after=3, bad=({"params": {"overlap": 4}}, "params.overlap"), weights="aa2"),
    "wan-animate": Case(frames=9, params={"steps": 1, "segment_length": 5, "carried_frames": 1},
                        interrupt_after=5, bad=({"params": {"segment_length": 6}}, "params.segment_length"),
                        weights="wan-animate"),
    "tint": Case(frames=4, params={}, interrupt_after=2, bad=({"width": 12}, "submit.width")),
}


def recipe_engine() -> type[Engine]:
    module = types.ModuleType("recipe_engine")
    exec(compile(recipe_code(), "docs/architecture.md", "exec"), module.__dict__)
    return module.TintEngine


ENGINES = [*registry.names(), "tint"]


def engine_class(name: str) -> type[Engine]:
    return recipe_engine() if name == "tint" else registry.get(name)


def test_every_registered_engine_has_a_case():
    assert set(registry.names()) <= set(CASES), "add the new engine to CASES: the contract is checked on every engine"


# -- declarations -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENGINES)
def test_declarations(name):
    cls = engine_class(name)
    assert cls.name == name and cls.description
    required, optional = set(cls.required_inputs), set(cls.optional_inputs)
    assert required <= INPUT_NAMES and optional <= INPUT_NAMES and not required & optional
    assert int(cls.input_window) >= 1 and isinstance(cls.streaming, bool)
    for specs in (cls.params, cls.server_options):
        names = [s.name for s in specs]
        assert len(names) == len(set(names))
        for spec in specs:
            assert isinstance(spec, protocol.ParamSpec) and spec.doc
            assert spec.coerce(spec.default) == spec.default        # every default passes its own check
    assert not {s.name for s in cls.params} & {s.name for s in protocol.COMMON_PARAMS}
    if cls.restart_window is not None:
        int_params = {s.name for s in cls.params if s.kind == "int"}
        assert len(cls.restart_window) == 2
        for v in cls.restart_window:
            assert isinstance(v, int) or v in int_params, f"restart_window names {v!r}, not an int param"
    if cls.needs_weights:
        # The up-front weights check comes from the engine itself.
        assert cls.weights_report is not Engine.weights_report, "an engine with weights checks its folder"
    assert json.loads(json.dumps(cls.describe()))["name"] == name
    assert cls().options == {s.name: s.default for s in cls.server_options}


@pytest.mark.parametrize("name", [n for n in ENGINES if engine_class(n).needs_weights])
def test_weights_problem_is_one_sentence_for_a_folder_that_is_not_the_engines(name, tmp_path, tiny_weights):
    cls = engine_class(name)
    assert cls.weights_problem(str(tmp_path)).count("\n") == 0
    other = next(n for n in ("aa2", "wan-animate") if n != name)
    problem = cls.weights_problem(str(tiny_weights(other)))
    assert problem and problem.count("\n") == 0, "another engine's folder is refused at serve start"
    assert cls.weights_problem(str(tiny_weights(name))) is None


# -- running -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loaded(tiny_weights):
    """name -> a loaded engine instance (one per module: loading is the slow part)."""
    made: dict = {}

    def get(name):
        if name not in made:
            case = CASES[name]
            engine = engine_class(name)(weights=str(tiny_weights(case.weights)) if case.weights else None)
            engine.load()
            made[name] = engine
        return made[name]
    return get


def shot(n: int):
    inp = tiny_inputs(n, SIZE, SIZE, with_objects=False)
    inp.pop("reference")
    frames = [{k: v[i] for k, v in inp.items()} for i in range(n)]
    rgba, kp = figure(SIZE)
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    reference = (rgba[..., :3] * alpha + 90 * (1 - alpha)).astype(np.uint8)
    return reference, kp, frames


def make_job(cls, case: Case, frames: int, **overrides) -> AdmittedJob:
    reference, kp, _ = shot(1)
    params = protocol.validate_params((*protocol.COMMON_PARAMS, *cls.params),
                                      {**case.params, "seed": 3, **overrides.pop("params", {})})
    fields = dict(job_id="c1", engine=cls.name, width=SIZE, height=SIZE, frames=frames, params=params,
                  reference=reference, reference_keypoints=kp)
    fields.update(overrides)
    return AdmittedJob(**fields)


@dataclass
class Run:
    results: dict                 # index -> (rgba, matte)
    sent: list                    # every header the engine's context sent, in order
    releases: list                # every ctx.release(upto)
    cancelled: bool = False


class _RecordingWorkerContext(WorkerContext):
    """The server's WorkerContext, noting where the engine releases its inputs."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.releases: list[int] = []

    def release(self, upto: int) -> None:
        self.releases.append(int(upto))
        super().release(upto)


def run_engine(engine, job: AdmittedJob, frames: list, *, on_header=None) -> Run:
    """Run ``job`` through a real ServerJob + WorkerContext holding every frame."""
    cls = type(engine)
    wanted = set(cls.required_inputs) | set(cls.optional_inputs)
    sj = ServerJob(job, b"conformance", cls, window=job.frames)
    for i, f in enumerate(frames):
        sj.add_frame(i, {k: v for k, v in f.items() if k in wanted})
    sj.end_input()
    out = Run({}, [], [])

    def send(msg, arrays):   # a typed message (messages.Result, ...), as the worker hands it over
        hdr = msg.to_dict()
        out.sent.append(hdr)
        if hdr["type"] == protocol.RESULT:
            out.results[hdr["index"]] = (arrays[protocol.RESULT_RGBA].copy(), arrays[protocol.RESULT_MATTE].copy())
        if on_header is not None:
            on_header(hdr, sj)

    ctx = _RecordingWorkerContext(sj, send)
    engine.validate(job)
    try:
        engine.run(ctx)
    except JobCancelled:
        out.cancelled = True
    out.releases = ctx.releases
    return out


@pytest.fixture(scope="module")
def full_runs(loaded):
    made: dict = {}

    def get(name):
        if name not in made:
            cls, case = engine_class(name), CASES[name]
            _, _, frames = shot(case.frames)
            made[name] = run_engine(loaded(name), make_job(cls, case, case.frames), frames)
        return made[name]
    return get


@pytest.mark.parametrize("name", ENGINES)
def test_each_frame_emitted_exactly_once(name, full_runs):
    case, run = CASES[name], full_runs(name)
    indices = [h["index"] for h in run.sent if h["type"] == protocol.RESULT]
    assert sorted(indices) == list(range(case.frames)) and not run.cancelled
    for rgba, matte in run.results.values():
        assert rgba.dtype == np.uint8 and rgba.shape == (SIZE, SIZE, 4)
        assert matte.dtype == np.uint8 and matte.shape == (SIZE, SIZE)


@pytest.mark.parametrize("name", ENGINES)
def test_cancel_within_one_step(name, loaded):
    cls, case = engine_class(name), CASES[name]
    _, _, frames = shot(case.frames)
    after: list = []

    def cancel_at_first_step(hdr, sj):
        if sj.cancelled:
            after.append(hdr)
        elif hdr["type"] == protocol.PROGRESS and hdr.get("stage") == "generating":
            sj.cancel("cancelled")       # as the socket loop does on CANCEL, from another thread
    run = run_engine(loaded(name), make_job(cls, case, case.frames), frames, on_header=cancel_at_first_step)
    assert run.cancelled, "the engine ran to the end after a cancel"
    assert not [h for h in after if h["type"] in (protocol.PROGRESS, protocol.RESULT)], \
        f"after the cancel the engine still sent {after}"
    assert len(run.results) < case.frames


@pytest.mark.parametrize("name", ENGINES)
def test_validate_errors_carry_their_field(name, loaded):
    cls, case = engine_class(name), CASES[name]
    overrides, expected = case.bad
    with pytest.raises(EngineInputError) as err:
        loaded(name).validate(make_job(cls, case, case.frames, **overrides))
    assert err.value.field == expected and str(err.value).count("\n") == 0
    param_names = {s.name for s in (*protocol.COMMON_PARAMS, *cls.params)}
    head, _, rest = expected.partition(".")
    # One naming for every engine: the protocol's (params.NAME, submit.reference, ...).
    assert (head == "params" and rest in param_names) or head == "submit"


@pytest.mark.parametrize("name", ENGINES)
def test_resume_restarts_where_restart_window_says(name, loaded, full_runs):
    cls, case = engine_class(name), CASES[name]
    engine, full = loaded(name), full_runs(name)
    n = case.frames
    _, _, frames = shot(n)
    job = make_job(cls, case, n)

    def stop_after(hdr, sj):
        if hdr["type"] == protocol.RESULT and hdr["index"] + 1 >= case.interrupt_after:
            sj.cancel("cancelled")           # the server was stopped here
    interrupted = run_engine(engine, job, frames, on_header=stop_after)
    assert interrupted.cancelled
    kept = interrupted.results
    assert kept and len(kept) < n
    for i, (rgba, matte) in kept.items():        # what was kept is what an uninterrupted run gives
        assert np.array_equal(rgba, full.results[i][0]) and np.array_equal(matte, full.results[i][1])

    entry = cls.describe()
    (planned,) = resume.plan(set(kept), n, entry, job.params)
    start = planned.start
    assert planned.first_missing == min(set(range(n)) - set(kept)) and start <= planned.first_missing
    # The restart point is one the engine's own run could restart at: it had
    # released every input before it there (a window start), or it is 0.
    assert start == 0 or start in full.releases, \
        f"restart_window {cls.restart_window} restarts at {start}; the engine's windows start at {full.releases}"
    part = make_job(cls, case, n - start)
    resumed = run_engine(engine, part, frames[start:])
    assert sorted(resumed.results) == list(range(n - start))
    fresh = run_engine(engine, make_job(cls, case, n - start), frames[start:])
    for j in range(n - start):
        assert np.array_equal(resumed.results[j][0], fresh.results[j][0])
    if cls.restart_window is None:
        # Independent frames: the resumed shot is the uninterrupted one, frame for frame.
        for j in range(n - start):
            assert np.array_equal(resumed.results[j][0], full.results[start + j][0]), f"frame {start + j}"
