# `make train` / `make test`: create .venv on first use, install, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch and torchvision must be a matching pair; override for your platform, e.g.
#   make train TORCH_SPEC="torch torchvision"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=
PYTEST_ARGS ?= -n 2

.PHONY: train test test-learning lint bench-stn clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

train: $(VENV)/.installed  ## train the default task on its embedded data
	$(PY) train.py $(ARGS)

test: $(VENV)/.installed  ## run the test suite (fast tests; `make test PYTEST_ARGS="-m slow"` for slow ones)
	WANDB_MODE=offline $(PY) -m pytest $(PYTEST_ARGS)

test-learning: $(VENV)/.installed  ## every task trains briefly and must clear its learning bar (about 10 minutes)
	WANDB_MODE=offline $(PY) -m pytest -m learning

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench-stn: $(VENV)/.installed
	$(PY) benchmarks/stn.py

clean:
	rm -rf outputs multirun wandb lightning_logs .pytest_cache
