# Two entry points: `make demo` and `make test`. Both build .venv (Python 3.11)
# from the project's own pinned files on first use and reuse it afterwards.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo venv clean addon bench

venv: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@! $(PY) -m pip show torchvision >/dev/null 2>&1 || (echo "torchvision is installed in $(VENV); it breaks transformers here: remove it" && false)
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests

demo: $(STAMP)
	$(VENV)/bin/inhabit demo --out demo_out

addon: $(STAMP)
	$(PY) build_addon.py

bench: $(STAMP)
	$(PY) bench/transport.py
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) dist demo_out
