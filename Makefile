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

demo: $(STAMP)
	$(BIN)/metarlkit compare --task bernoulli-bandit:arms=5 --episodes 100 --num-tasks 1000 \
		--agent random --agent greedy --agent egreedy --agent ucb1 --agent ts --agent ots \
		--agent gittins --agent oracle \
		--json $(DEMO_DIR)/bandits-k5-n100.json --plot $(DEMO_DIR)/bandits-k5-n100.png

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

bench: $(STAMP)
	$(BIN)/python benchmarks/evaluation_throughput.py
	$(BIN)/python benchmarks/sampling_throughput.py
	$(BIN)/python benchmarks/mdp_greedy_prior.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
