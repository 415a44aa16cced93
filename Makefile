# speechmapper: set-up, demo and tests. `make demo` and `make test` each create the
# virtual environment (pinned requirements.txt) on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: venv demo miniature test lint

$(VENV)/.installed: requirements.txt setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

# The main job on the embedded default: synthesize the mini-corpus, extract features, topline,
# stage 1 on the trained tiny chat LM's embedding table, zero-shot decoding, stage 2, decode,
# print the results table and the four figures. `make miniature`: the paper's stage-2 findings
# in miniature (3 seeds; about 25 minutes on 2 cores, after or without the demo).
demo: venv
	$(PY) recipes/LibriSpeech/run_demo.py

miniature: venv
	$(PY) recipes/LibriSpeech/run_miniature.py

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check .
