# The two commands of the README: `make up` and `make test`. Both set everything up themselves.
# Debian's python3 is used on purpose: services that run as other users (Dask Gateway's
# LocalBackend) cannot use an interpreter living under /root (mode 700).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAKE ?= $(CURDIR)/var/demo-lake

.PHONY: up test docs bench venv clean lint image image-lock helm-values

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[hub,pgstac,test,docs,bench]"
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	$(BIN)/eosc-pangeo up --lake $(LAKE)

test: $(STAMP)
	$(BIN)/python -m pytest

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir var/site

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The platform image (images/): built offline with buildah from a debootstrapped Debian base.
image: $(STAMP)
	PYTHON=$(CURDIR)/$(BIN)/python images/build.sh

image-lock: $(STAMP)
	$(BIN)/python images/lock.py

# The chart's values reference (docs/helm-values.md), generated from values.schema.json.
helm-values: $(STAMP)
	$(BIN)/python helm/tools/values_reference.py

clean:
	rm -rf var .pytest_cache
