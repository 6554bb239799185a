# Two entry points for a fresh machine with Python 3.11+ and make: `make run` and `make test`.
# Each creates (or reuses) the virtual environment .venv and installs the project into it.

PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: setup run test test-all test-slow clean-venv peer

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fusion-sweep needs Python 3.11 or newer, found " + sys.version.split()[0])'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The main job: a quick sweep on synthetic data (results in runs/quick/, git-ignored). ARGS="..." passes flags.
run: $(STAMP)
	$(VENV)/bin/fusion-sweep run $(ARGS)

# The default test suite (fast tests; slow and cluster tests are marked and excluded).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(ARGS)

# Only the slow and multi-node tests.
test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m 'slow or cluster' $(ARGS)

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m '' $(ARGS)

clean-venv:
	rm -rf $(VENV)

# Optional: Keras 3 peers for `fusion-sweep bench --peer keras` (JAX backend in .venv, TensorFlow in its own venv
# so TensorFlow never changes how tensorflow-datasets behaves in .venv).
peer: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[keras]'
	test -x .venv-peer-tf/bin/python || $(PYTHON) -m venv .venv-peer-tf
	.venv-peer-tf/bin/python -m pip install --quiet "keras>=3.5" tensorflow-cpu numpy
