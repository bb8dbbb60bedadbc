# Two entry points, each creating or reusing .venv:  make demo  (the main job)  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Offline machines of this project keep real data in ../shared/data; elsewhere datasets download to ~/.cache.
SHARED_DATA := $(wildcard $(CURDIR)/../shared/data)
ifneq ($(SHARED_DATA),)
export MOE_MLORA_DATA_DIR ?= $(abspath $(SHARED_DATA))
endif

.PHONY: demo test install clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,onnx,tensorboard]'
	touch $@

install: $(BIN)/.installed

# The paper's comparison in small: Base, MLoRA and MoE-MLoRA with DeepFM on ML-100K split by occupation
# (downloaded on first use). Resumable: a rerun reuses the recorded runs and only rebuilds the report.
demo: install
	$(BIN)/moe-mlora reproduce table1 --datasets movielens-100k:occupation --models deepfm --seeds 1 --results-dir results/demo

# One pytest worker per core (tests/conftest.py keeps each on a core of its own); plain `pytest` runs serially.
test: install
	$(BIN)/python -m pytest -n auto --dist worksteal

clean:
	rm -rf $(VENV) .pytest_cache
