# openwit: the README's two commands.
#   make demo   create .venv, install, run the embedded end-to-end demo (offline)
#   make test   create .venv if needed, run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WORDNET_DIR ?= /usr/share/wordnet
DEMO_OUT ?= demo-out

.PHONY: demo test test-slow venv wordnet clean

venv: $(STAMP)

$(STAMP): setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "openwit needs Python >= 3.11"' \
	  || { echo "error: Python 3.11+ is required (found $(PYTHON)); set PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	# torch first and pinned: its CPU wheel is on local disk; unpinned it pulls GBs of CUDA packages
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# WordNet 3.0 database files from Debian's wordnet-base (for the query list and the demo).
wordnet:
	@if [ -f $(WORDNET_DIR)/data.noun ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian package wordnet-base (WordNet 3.0) ..."; \
	  $$SUDO apt-get install -y -q wordnet-base >/dev/null 2>&1 \
	  || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q wordnet-base >/dev/null; } \
	  || { echo "error: could not install wordnet-base with apt-get; install WordNet 3.0 database files and set WORDNET_DIR" >&2; exit 1; }; \
	else \
	  echo "error: WordNet 3.0 not found in $(WORDNET_DIR) and apt-get is not available." >&2; \
	  echo "       Install Debian/Ubuntu 'wordnet-base' (or copy WordNet 3.0's dict/ folder) and run: make WORDNET_DIR=/path/to/dict ..." >&2; \
	  exit 1; \
	fi

test: venv wordnet
	OPENWIT_WORDNET_DIR=$(WORDNET_DIR) $(PY) -m pytest -q

# The longer end-to-end tests (kill -9 resume, whole-road runs, the trainer learning CIFAR-10).
test-slow: venv wordnet
	OPENWIT_WORDNET_DIR=$(WORDNET_DIR) $(PY) -m pytest -q -m slow

# The demo itself clears DEMO_OUT, and only when an earlier demo wrote it (DEMO_OUT/.openwit-demo).
demo: venv wordnet
	OPENWIT_WORDNET_DIR=$(WORDNET_DIR) $(PY) -m openwit.demo --out $(DEMO_OUT)

clean:
	@d='$(DEMO_OUT)'; if [ -e "$$d" ] && ! { [ -d "$$d" ] && [ ! -L "$$d" ] \
	  && { [ -z "$$(ls -A "$$d")" ] || [ -f "$$d/.openwit-demo" ]; }; }; then \
	  echo "error: $$d is not an earlier demo output (no .openwit-demo in it); make clean leaves everything alone" >&2; \
	  exit 1; fi
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
