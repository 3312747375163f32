# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
YY := $(VENV)/bin/yunying
DEMO_DIR ?= demo-company
DEMO_ARGS ?=

.PHONY: demo test test-ahead fuzz venv dev sysdeps lint typecheck bench clean serve

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[spark,postgres,pdf]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[spark,postgres,pdf,dev]"
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed

dev: $(VENV)/.installed-dev

## make demo: install, build the demo company, print the overview, serve it.
demo: venv
	$(YY) demo --project $(DEMO_DIR) $(DEMO_ARGS)
	$(YY) overview --project $(DEMO_DIR)
	@if [ -z "$$CI" ] && [ -t 0 ] && $(YY) serve --help >/dev/null 2>&1; then \
		$(YY) serve --project $(DEMO_DIR) --demo; fi

sysdeps:
	bash scripts/install-system-deps.sh

## make test: system packages, dev dependencies, lint, types, then the whole suite.
test: sysdeps dev
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks)
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider

## make test-ahead: the whole suite under clocks one and three years ahead (Debian's faketime).
test-ahead: sysdeps dev
	for when in "2027-12-01 03:00:00" "2029-06-30 22:30:00"; do \
		echo "clock: $$when"; \
		faketime "$$when" $(PY) -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider || exit 1; \
	done

## make fuzz: the property tests only, exploring 20x more examples with fresh randomness.
fuzz: sysdeps dev
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -n 2 -q -p no:cacheprovider -m "not browser" \
		$$(grep -rl "from hypothesis" tests --include="test_*.py")

lint: dev
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks)

typecheck: dev
	$(VENV)/bin/mypy

bench: venv
	$(PY) benchmarks/import_bench.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
