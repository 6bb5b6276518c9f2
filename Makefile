# Two commands for a fresh clone: `make run` (the bot, embedded defaults) and `make test`.
PYTHON ?= python3
# Test workers (pytest-xdist): one per core. Each worker is its own test session, so each gets its
# own PostgreSQL database (tests/conftest.py). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= auto
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint install

run: $(STAMP)
	$(VENV)/bin/wuye run

test: $(STAMP)
	@# System pieces some tests need (a CJK font for charts, Chromium for the sandbox test);
	@# each script is quiet when they are present and says what to install when it cannot.
	-@bash scripts/ensure-cjk-font
	-@[ ! -f scripts/ensure-browser ] || bash scripts/ensure-browser
	$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

install: $(STAMP)

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@
