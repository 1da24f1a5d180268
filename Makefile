# Two entry points: `make demo` and `make test`. Both build .venv (Python 3.11)
# from the project's own pinned files on first use and reuse it afterwards.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The keypoint check's estimator venv (see pose-venv below).
POSE_PYTHON ?= python3.11
POSE_VENV   := .venv-pose
POSE_STAMP  := $(POSE_VENV)/.installed

.PHONY: test lint typecheck demo venv clean addon bench test-blender-4.2 gpu-bench-bundle fuzz pose-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@! $(PY) -m pip show torchvision >/dev/null 2>&1 || (echo "torchvision is installed in $(VENV); it breaks transformers here: remove it" && false)
	touch $(STAMP)

test: lint typecheck $(STAMP) $(POSE_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests

# The keypoint check's estimator (BlazePose, mediapipe 0.10.14: Python <= 3.12, protobuf 4.x) in its
# own venv, run as a subprocess by tests/test_keypoint_estimator.py and bench/keypoints.py.
pose-venv: $(POSE_STAMP)
$(POSE_STAMP): requirements-pose.txt
	test -x $(POSE_VENV)/bin/python || $(POSE_PYTHON) -m venv $(POSE_VENV)
	$(POSE_VENV)/bin/python -m pip install --quiet -r requirements-pose.txt
	touch $@

# ruff (configured in pyproject.toml, line length 120) gates `make test` and so CI.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy over the bpy-free layers (files listed in pyproject.toml); part of `make test`.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The long fuzz run: hostile messages against a real server for FUZZ_SECONDS (`make test`
# runs a bounded, fixed-seed part of the same suite); its summary goes to build/fuzz-report.json.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	mkdir -p build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_REPORT=build/fuzz-report.json $(PY) -m pytest -q -s -p no:cacheprovider \
		tests/test_fuzz_server.py

demo: $(STAMP)
	$(VENV)/bin/inhabit demo --out demo_out

addon: $(STAMP)
	$(PY) build_addon.py

# Every benchmark that fits a CPU session (bench/train.py, ~30 min, runs on its own).
bench: $(STAMP)
	$(PY) bench/transport.py
	$(PY) bench/pipeline.py
	$(PY) bench/convert_memory.py
	$(PY) bench/export.py
	$(PY) bench/wan_animate.py

# bench/wan_animate.py's GPU rows for a CUDA box without diffusers/pyzmq/bpy:
# build/gpu-bench (< 64 MiB); run it there with `sh build/gpu-bench/run.sh`.
gpu-bench-bundle: $(STAMP)
	$(PY) bench/gpu_bundle.py build/gpu-bench

# The same suite against the oldest Blender the add-on supports (4.2 LTS): a
# second venv holding only bpy 4.2.0, with everything else seen through .venv.
VENV42 := .venv-blender-4.2
$(VENV42)/.installed: $(STAMP)
	test -x $(VENV42)/bin/python || $(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install --quiet --no-deps bpy==4.2.0
	$(VENV42)/bin/python -c "import site; open(site.getsitepackages()[0] + '/inhabit-main-venv.pth', 'w').write('$(abspath $(VENV))/lib/python3.11/site-packages\\n')"
	touch $@

test-blender-4.2: $(VENV42)/.installed
	$(VENV42)/bin/python -c "import bpy; assert bpy.app.version[:2] == (4, 2), bpy.app.version"
	$(VENV42)/bin/python -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) $(VENV42) $(POSE_VENV) dist demo_out
