# safehold — `make run` starts the service with a demo bank; `make test` runs every test.
# Both create .venv and install the locked dependencies on first use; later runs skip
# the install unless requirements.lock or pyproject.toml changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
LOCKHASH := $(shell cat requirements.lock pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(LOCKHASH)
PYTEST_ARGS ?=

.PHONY: install run test bench lint format lock clean messages

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

run: install
	$(BIN)/safehold demo
	$(BIN)/safehold serve --host $(HOST) --port $(PORT)

test: install
	scripts/ensure-services
	SAFEHOLD_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m benchmarks

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# Extract the portal's messages into its .pot and update its catalogs (ms, ...).
LOCALES := src/safehold/web/portal/locales
messages: install
	$(BIN)/pybabel extract -F babel.cfg --sort-by-file --no-wrap --project safehold \
		--copyright-holder "safehold contributors" --msgid-bugs-address "" \
		-o $(LOCALES)/portal.pot .
	$(BIN)/pybabel update -i $(LOCALES)/portal.pot -d $(LOCALES) -D portal --no-wrap --ignore-obsolete

# Re-pin every dependency after editing pyproject.toml (run inside a fresh venv).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e ".[dev]" hatchling editables
	.lockvenv/bin/pip freeze --exclude-editable | grep -v -i '^safehold' > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
