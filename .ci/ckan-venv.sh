#!/bin/sh
# CKAN 2.12 with ckanext-dcat in a venv of their own (default: .venv-ckan in the clone), for the
# tests that read our served DCAT-AP back with ckanext-dcat's RDF parser, as a portal's
# harvester would. CKAN pins its own requirements (Flask, SQLAlchemy, ...) that the project's
# venv must not share. Idempotent: a venv whose parser imports is left alone.
# Exit 2: cannot be installed here (the tests skip, saying so).
set -eu
cd "$(dirname "$0")/.."
VENV="${CKAN_VENV:-.venv-ckan}"
PYTHON="${PYTHON:-python3}"
# make test runs the suite in several processes (and the Python 3.12 run beside them): one
# installs, the others wait for it and then find the venv ready.
exec 9>"$VENV.lock"
flock 9
probe='from ckanext.dcat.processors import RDFParser; RDFParser(profiles=["euro_dcat_ap_3"])'
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$probe" >/dev/null 2>&1; then exit 0; fi
"$PYTHON" -m venv "$VENV" || exit 2
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The bare ckan wheel declares none of its requirements: the [requirements] extra does.
"$VENV/bin/python" -m pip install --quiet "ckan[requirements]==2.12.0" "ckanext-dcat>=2.4" || exit 2
"$VENV/bin/python" -c "$probe"
