# Two entry points: `make demo` and `make test`. Both build .venv (Python 3.11)
# from the project's own pinned files on first use and reuse it afterwards;
# `make test` also builds .venv-blender-5.2 (Python 3.13, bpy 5.2 LTS).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The keypoint check's estimator venv (see pose-venv below).
POSE_PYTHON ?= python3.11
POSE_VENV   := .venv-pose
POSE_STAMP  := $(POSE_VENV)/.installed

.PHONY: test lint typecheck demo venv clean addon bench test-blender-5.0 gpu-bench-bundle fuzz pose-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@! $(PY) -m pip show torchvision >/dev/null 2>&1 || (echo "torchvision is installed in $(VENV); it breaks transformers here: remove it" && false)
	touch $(STAMP)

test: lint typecheck $(STAMP) $(POSE_STAMP) $(WHEELS)
	$(PY) -m pytest -q -p no:cacheprovider tests
	$(MAKE) test-blender-5.2

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

# pyzmq wheels for the extension zips (build_addon.py), fetched once from PyPI: the
# package tests build and install the real per-Python zips.
WHEELS := build/wheel-cache/.complete
$(WHEELS): build_addon.py $(STAMP)
	$(PY) build_addon.py --download-only --cache $(@D)
	touch $@

# The blender-marked tests on other Blenders, headless: one venv per version holding
# that bpy. PyPI's bpy 4.2-5.0 are cp311 wheels (the venv sees everything else
# through .venv); 5.1+ are cp313 only (the venv installs requirements-blender.txt;
# modules that need torch are not collected there). `make test` runs 5.0 (in .venv)
# and the current LTS, 5.2; `make test-blender-4.2` / `-5.0` / `-5.2` / `-5.3` run one.
PYTHON313 ?= $(or $(lastword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13)),\
	$(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13))
BPY_4.2 := 4.2.0
BPY_5.2 := 5.2.3
BPY_5.3 := 5.3.0
BPY_PYTHON_4.2 := 3.11
BPY_PYTHON_5.2 := 3.13
BPY_PYTHON_5.3 := 3.13
BLENDER_TESTS := -q -p no:cacheprovider -m blender tests
BLENDER_TESTS_3.11 := $(BLENDER_TESTS)
# The 3.13 venvs have no torch: their blender tests leave out those that run the diffusion stack.
BLENDER_TESTS_3.13 := -q -p no:cacheprovider -m "blender and not torch" tests
# On 4.2 LTS the add-on's tests run. The project's own Blender tools run in .venv's Blender 5.0 and
# are left out: the training-clip generator (5.0 material API) and the character importers (bpy
# 4.2.0's glTF importer crashes now and then when a test imports the same file again).
BLENDER_TESTS_4.2 := $(BLENDER_TESTS) --ignore=tests/test_dataset_labels.py \
	--ignore=tests/test_dataset_motions.py --ignore=tests/test_character_import.py

# Kept between runs (make would delete a pattern rule's stamp as an intermediate file).
.PRECIOUS: .venv-blender-%/.installed
.venv-blender-%/.installed: requirements-blender.txt $(STAMP)
	@test -n "$(BPY_$*)" || (echo "no bpy version known for Blender $*: add BPY_$* to the Makefile" && false)
	if [ "$(BPY_PYTHON_$*)" = "3.11" ]; then \
	  test -x $(@D)/bin/python || $(PYTHON) -m venv $(@D); \
	  $(@D)/bin/python -m pip install --quiet --no-deps bpy==$(BPY_$*); \
	  $(@D)/bin/python -c "import site; print('$(abspath $(VENV))/lib/python3.11/site-packages', file=open(site.getsitepackages()[0] + '/inhabit-main-venv.pth', 'w'))"; \
	else \
	  test -n "$(PYTHON313)" || { echo "bpy $(BPY_$*) needs Python 3.13: install it or set PYTHON313=/path/to/python3.13"; exit 1; }; \
	  test -x $(@D)/bin/python || $(PYTHON313) -m venv $(@D); \
	  $(@D)/bin/python -m pip install --quiet -r requirements-blender.txt bpy==$(BPY_$*); \
	fi
	touch $@

test-blender-5.0: $(STAMP) $(WHEELS)
	$(PY) -m pytest $(BLENDER_TESTS)

test-blender-%: .venv-blender-%/.installed $(WHEELS)
	.venv-blender-$*/bin/python -c "import bpy; assert '%d.%d' % bpy.app.version[:2] == '$*', bpy.app.version"
	.venv-blender-$*/bin/python -m pytest $(or $(BLENDER_TESTS_$*),$(BLENDER_TESTS_$(BPY_PYTHON_$*)))

clean:
	rm -rf $(VENV) .venv-blender-* $(POSE_VENV) dist demo_out

# The add-on in real Blender windows: Debian's 4.3 (trixie) and 5.2 LTS (sid) in chroots under Xvfb,
# the panel driven by real clicks against `inhabit serve --engine preview` (tests/gui/, docs/addon.md).
# Needs root; the first run builds the chroots (~1.5 GB each, minutes) in ~/.cache/inhabit-gui.
# Not part of `make test` (CI skips it); run it whenever the add-on changes. Screenshots: build/test-gui/.
.PHONY: test-gui bench-gui
test-gui: $(STAMP)
	$(PY) -m tests.gui.harness

# The window's cost to a job: the same shot headless and in the GUI (bench/RESULTS.md, section gui).
bench-gui: $(STAMP)
	$(PY) bench/gui.py
