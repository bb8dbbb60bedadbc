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
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,plots]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/moe-mlora data stats movielens-100k --split-by occupation

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
