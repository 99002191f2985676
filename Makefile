# Two commands on a fresh machine with Python 3.11+ and make: `make report` and `make test`.
# Each creates .venv on first use and installs the project (and its [test] extra) from pyproject.toml.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: report test test-isa bench lint clean

report: $(STAMP)  ## render the report (Quarto if installed, else the built-in engine) into _book/
	$(VENV)/bin/sgdlab render

test: $(STAMP)  ## lint, then the test suite (unit, property, contract and report tests)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest

# The engine, experiment and cache tests once per instruction-set dispatch: torch's ATen capability
# (default, avx2, avx512), MKL's (AVX2, AVX512) and each compiled copy of the loop; what this CPU lacks
# is skipped with its reason. 6 to 12 minutes on 2 cores: .ci/run calls it after `make test`.
test-isa: $(STAMP)  ## the numerical tests under every dispatch this CPU offers
	$(PY) tests/isa_matrix.py

bench: $(STAMP)  ## time the reference loop against the batched engine, and peak memory
	$(VENV)/bin/sgdlab bench
	$(PY) benchmarks/memory.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# The C kernel is compiled at install: an edit of it reinstalls too (else the engine runs its torch loop).
$(STAMP): pyproject.toml src/sgdlab/_kernels.c src/sgdlab/_kernels_impl.h
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sgdlab needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to 2.13.0 in pyproject.toml: its CPU wheel, not gigabytes of CUDA packages
	$(PY) -m pip install --quiet -e '.[test]'
	# the python3 kernelspec whose kernels listen on a private Unix socket, not plain TCP (sgdlab/kernelspec.py)
	$(PY) -m sgdlab.kernelspec
	touch $(STAMP)

clean:
	rm -rf $(VENV) _book .pytest_cache .hypothesis
