# CDA Cockpit. `make setup` installs everything on a fresh Debian 12 machine; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Debian packages: the real tools of the flow, the osu018 library, and a browser for the cockpit's tests.
APT_PACKAGES := yosys opensta qrouter qflow-tech-osu018 graywolf iverilog magic chromium chromium-driver \
                python3-venv python3-dev build-essential
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup apt venv test test-fast run bench clean

setup: apt venv
	@echo "setup done: run 'make test', then 'make run'"

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	else echo "Debian packages present"; fi

venv:
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel; a looser spec would pull several GB of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'

test:
	$(VENV)/bin/pytest -q

run:
	@echo "CDA Cockpit: open http://localhost:$(PORT) in your browser"
	$(VENV)/bin/streamlit run cockpit/app.py --server.port $(PORT) --server.headless true

bench:
	@mkdir -p bench/results
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache bench/results/*.tmp
