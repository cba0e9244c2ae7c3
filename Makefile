# Every target that runs offrl depends on .venv, so a fresh clone needs no step before it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= default
RESULTS ?= results
# pytest processes of `make test`: on 2 cores, two take the suite from 13.4 to 9.2-9.7 min.
TEST_WORKERS ?= 2

.PHONY: install install-cuda test test-slow lint format bench bench-peer bench-status leaderboard bench-speed clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

# A machine with an NVIDIA GPU: the same venv plus JAX's CUDA 12 build (offrl[cuda]); every target
# then trains on the GPU.
install-cuda: install
	$(BIN)/pip install -e '.[dev,cuda]'

# --dist loadscope keeps a test file on one worker, so its module fixtures are built once.
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

test-slow: install
	$(BIN)/python -m pytest -m slow

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# PROFILE=default (about 95 min on 2 cores, datasets included) | repro (about 37 h) | antmaze (about
# 40 min) | full (the papers' protocol) | smoke (minutes); RESULTS is the folder of the store, the run
# folders and the board (docs/benchmark.md).
bench: install
	$(BIN)/offrl bench --profile $(PROFILE) --results $(RESULTS) $(BENCH_ARGS)
	$(BIN)/offrl leaderboard --store $(RESULTS)/runs.jsonl

# d3rlpy's TD3+BC and PRDC on the profile's data, stored beside ours (pip install -e '.[peers]').
bench-peer: install
	$(BIN)/offrl peer --profile $(PROFILE) --results $(RESULTS) $(PEER_ARGS)
	$(BIN)/offrl leaderboard --store $(RESULTS)/runs.jsonl

# What the store holds and lacks of the profile, ours and the peers' (trains nothing).
bench-status: install
	$(BIN)/offrl status --profile $(PROFILE) --results $(RESULTS)

leaderboard: install
	$(BIN)/offrl leaderboard --store $(RESULTS)/runs.jsonl

bench-speed: install
	$(BIN)/python -m benchmarks.speed

clean:
	rm -rf $(VENV) .pytest_cache
