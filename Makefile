# make run   — set up everything on a fresh machine and serve on http://127.0.0.1:8000
# make test  — the test suite (SQLite; set EAUTH_TEST_DATABASE_URL for PostgreSQL)
# make bench — benchmarks with their baselines, measured side by side
# make soak  — the fuzz and schemathesis tests run much longer (docs/fuzzing.md)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PASSPHRASE_FILE := .secrets/key-passphrase

.PHONY: run init test test-all test-postgres bench soak clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The demo passphrase lives outside the data dir so a backup of ./var never carries it.
$(PASSPHRASE_FILE):
	mkdir -p $(dir $@) && chmod 700 $(dir $@)
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(32))" > $@

init run: export EAUTH_KEY_PASSPHRASE_FILE ?= $(abspath $(PASSPHRASE_FILE))

init: $(VENV)/.installed $(PASSPHRASE_FILE)
	$(BIN)/eauth init
	$(BIN)/eauth seed-demo

run: init
	$(BIN)/eauth serve --host 127.0.0.1 --port 8000

test: $(VENV)/.installed
	$(BIN)/pytest -n 2 -q

test-all: $(VENV)/.installed
	$(BIN)/pytest -n 2 -q -m ''

test-postgres: $(VENV)/.installed
	EAUTH_TEST_DATABASE_URL=$${EAUTH_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} $(BIN)/pytest -n 2 -q

bench: $(VENV)/.installed
	$(BIN)/python -m bench

# EAUTH_FUZZ_EXAMPLES multiplies every fuzz target's examples (CI: 1); EAUTH_FUZZ_SEED draws inputs CI
# never sees (printed, so that a failure can be replayed with the same seed).
soak: export EAUTH_FUZZ_EXAMPLES ?= 20
soak: export EAUTH_FUZZ_SEED ?= $(shell date +%s)
soak: $(VENV)/.installed
	@echo "soak: EAUTH_FUZZ_EXAMPLES=$$EAUTH_FUZZ_EXAMPLES EAUTH_FUZZ_SEED=$$EAUTH_FUZZ_SEED"
	$(BIN)/pytest -n 2 -q -p no:cacheprovider tests/fuzz tests/api/test_schemathesis.py

clean:
	rm -rf $(VENV) build *.egg-info
