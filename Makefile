# The two commands of the README: `make demo` and `make test`. Both create the
# virtual environment from the lock file when it is missing or out of date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
DEMO_DIR ?= demo-output

.PHONY: demo test test-all bench clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

# The demo trains RL2 for a few minutes (a fresh run each time), then scores it beside the
# classic agents on the same 1000 test tasks and plots the run.
demo: $(STAMP)
	rm -rf $(DEMO_DIR)/rl2-k5-n100
	$(BIN)/metarlkit train rl2 --task bernoulli-bandit:arms=5 --episodes 100 --preset demo \
		--out $(DEMO_DIR)/rl2-k5-n100
	$(BIN)/metarlkit compare --task bernoulli-bandit:arms=5 --episodes 100 --num-tasks 1000 \
		--agent $(DEMO_DIR)/rl2-k5-n100 --agent gittins --agent ts --agent ucb1 --agent greedy \
		--agent random --reference ts \
		--json $(DEMO_DIR)/bandits-k5-n100.json --plot $(DEMO_DIR)/bandits-k5-n100.png
	$(BIN)/metarlkit plot $(DEMO_DIR)/rl2-k5-n100 --num-tasks 1000 --baselines gittins,ts,ucb1,greedy,random \
		--out $(DEMO_DIR)/rl2-k5-n100.png

# Test files run in TEST_JOBS worker processes (pytest-xdist), each file's tests in one worker so
# module fixtures (compiled programs, trained runs) are built once.
TEST_JOBS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile -m ''

bench: $(STAMP)
	$(BIN)/python benchmarks/evaluation_throughput.py
	$(BIN)/python benchmarks/sampling_throughput.py
	$(BIN)/python benchmarks/mdp_greedy_prior.py
	$(BIN)/python benchmarks/mdp_structure.py
	$(BIN)/python benchmarks/rl2_throughput.py
	$(BIN)/python benchmarks/family_throughput.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
