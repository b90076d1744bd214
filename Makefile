# explainbench — `make train` and `make test` are all a new user needs (both install first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist processes: the suite is mostly single-threaded subprocess runs (CLI tests), so two
# workers keep both CI cores busy; PYTEST_WORKERS=0 runs in one process (easier to debug)
PYTEST_WORKERS ?= 2

.PHONY: install demo train test test-full lint format clean help

help:
	@echo "make demo      every method and explainer on an8flower, one report (installs first; RESUME=1 goes on after a crash)"
	@echo "make train     default run: an8flower single6c, small_cnn, classifier (installs first)"
	@echo "make test      fast test suite (installs first)"
	@echo "make test-full every test, including the slow ones"
	@echo "make lint      ruff check + ruff format --check (CI runs it before the tests)"
	@echo "make clean     remove caches and outputs/ (keeps .venv)"

# Re-installs only when pyproject.toml changes; the stamp makes repeated calls instant.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# outputs/demo/<time>/report.md and report.html; RESUME=1 goes on in the newest unfinished demo dir
demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/python -m explainbench.demo $(if $(RESUME),--resume) $(ARGS)

train: $(STAMP)
	$(BIN)/python train.py $(ARGS)

test: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/python -m pytest -m "not slow" -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-full: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} EXPLAINBENCH_SLOW=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check explainbench tests scripts train.py evaluate.py
	$(BIN)/ruff format --check explainbench tests scripts train.py evaluate.py

format: $(STAMP)
	$(BIN)/ruff format explainbench tests scripts train.py evaluate.py

clean:
	rm -rf outputs/ wandb/ lightning_logs/ .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
