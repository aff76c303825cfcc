# SSSSegment: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= out/demo

.PHONY: setup demo test lint bench
setup:
	@scripts/setup.sh $(VENV)

demo: setup
	$(BIN)/sssseg demo --out $(DEMO_OUT)

lint: setup
	$(BIN)/ruff check SSSSegmentLib SSSSegment Testing benchmarks docs scripts

test: lint
	$(BIN)/python -m pytest -q Testing

bench: setup
	$(BIN)/python benchmarks/bench_segment.py
