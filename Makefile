# The two commands of the README: `make demo` and `make test`. Both install what they need into .venv.
# `make test` is what CI runs: the whole suite, the `slow` multi-process tests included (about 6 minutes on an idle
# 2-core machine). `make test-fast` leaves those out, for local iteration.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,onnx]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) *.egg-info
