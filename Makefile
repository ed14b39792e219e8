# The two commands of the README: `make up` and `make test`. Both set everything up themselves.
# Debian's python3 is used on purpose: services that run as other users (Dask Gateway's
# LocalBackend) cannot use an interpreter living under /root (mode 700).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The lake and catalogue tests run a second time on Python 3.12 with the newest zarr (3.2+ has
# synchronous store writes and the FusedCodecPipeline), which Python 3.12 users resolve.
PY312_HOME ?= $(shell pyenv prefix 3.12.1 2>/dev/null)
VENV312 ?= .venv-py312
STAMP312 := $(VENV312)/.installed

.PHONY: up down status test test-py312 docs bench venv clean lint image image-lock helm-values

# The image's lock constrains the venv, so that the suite tests the versions the image runs
# (else every release on PyPI made them differ); `make image-lock` upgrades both.
EXTRAS := hub,pgstac,access,test,docs,bench

$(STAMP): pyproject.toml images/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	grep -v '^eosc-pangeo==' images/requirements.txt > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

$(STAMP312): pyproject.toml
	@test -x "$(PY312_HOME)/bin/python3" || { echo "make test: no Python 3.12 here (pyenv prefix \
	3.12.1 found none): the lake and catalogue tests cannot run on Python 3.12 with the newest \
	zarr. Install it (pyenv install 3.12.1) or give PY312_HOME=<prefix of a Python 3.12>." >&2; \
	exit 1; }
	test -x $(VENV312)/bin/python || $(PY312_HOME)/bin/python3 -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet --upgrade pip
	$(VENV312)/bin/python -m pip install --quiet --upgrade -e ".[test,access]" "zarr>=3.2"
	touch $(STAMP312)

venv: $(STAMP)

# The platform's state (configuration, users, logs): reused by the next `make up`.
STATE ?= $(CURDIR)/var/platform
PORT ?= 8000

up: $(STAMP)
	$(BIN)/eosc-pangeo up --state $(STATE) --port $(PORT)

down: $(STAMP)
	$(BIN)/eosc-pangeo down --state $(STATE)

status: $(STAMP)
	$(BIN)/eosc-pangeo status --state $(STATE)

# --tb=native: Debian's Python 3.11.2 can fail to re-parse a test's source for pytest's own
# traceback format ("AST constructor recursion depth mismatch"), which kills the xdist worker and
# every report after it.
# The suite runs in TEST_WORKERS processes (most tests wait on servers, not on the CPU; a third
# process made the browser and hub-restart tests miss their timeouts on 2 cores), with the
# Python 3.12 run beside them; its report follows the main one. tests/conftest.py keeps each test
# file in one process, and the tests of Slurm, and of the platform, each in one process.
TEST_WORKERS ?= 2

test: $(STAMP) $(STAMP312)
	.ci/system-packages.sh
	@mkdir -p var
	@$(VENV312)/bin/python -m pytest -q tests/lake tests/catalog > var/test-py312.log 2>&1 & \
	py312=$$!; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --tb=native; main=$$?; \
	wait $$py312; status312=$$?; \
	echo "== the lake and catalogue tests on Python 3.12 (var/test-py312.log) =="; \
	tail -n 40 var/test-py312.log; \
	test $$main -eq 0 && test $$status312 -eq 0

test-py312: $(STAMP312)
	$(VENV312)/bin/python -m pytest tests/lake tests/catalog

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir var/site

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The platform image (images/): built offline with buildah from a debootstrapped Debian base.
image: $(STAMP)
	PYTHON=$(CURDIR)/$(BIN)/python images/build.sh

image-lock: $(STAMP)
	$(BIN)/python -m pip install --quiet --upgrade -e ".[$(EXTRAS)]"
	$(BIN)/python images/lock.py

# The chart's values reference (docs/helm-values.md), generated from values.schema.json.
helm-values: $(STAMP)
	$(BIN)/python helm/tools/values_reference.py

clean:
	rm -rf var .pytest_cache
