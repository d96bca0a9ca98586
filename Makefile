# Two set-up commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# The FHIR test server (tests/fhir_server, Node.js over @medplum/fhir-router): `npm ci` when
# node_modules is missing or package-lock.json is newer than the last install.
FHIR_TEST_SERVER := tests/fhir_server
FHIR_TEST_SERVER_STAMP := $(FHIR_TEST_SERVER)/node_modules/.installed

$(FHIR_TEST_SERVER_STAMP): $(FHIR_TEST_SERVER)/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
	  && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
	  || { echo "make: Node.js 20+ and npm are needed for the FHIR test server (tests/fhir_server)"; exit 1; }
	npm ci --prefix $(FHIR_TEST_SERVER) --no-audit --no-fund --loglevel=error
	touch $@

run: $(STAMP)
	$(BIN)/lumbar-cds serve  # binds CDS_HOST:CDS_PORT (default 127.0.0.1:8080)

test: $(STAMP) $(FHIR_TEST_SERVER_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check cds_service tests bench

# Prints the table; BENCH_SAVE=1 also writes the tracked bench/results/latest.json (the README's figures).
bench: $(STAMP)
	$(BIN)/python -m bench.run $(if $(filter 1 yes true,$(BENCH_SAVE)),--save)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
