# The two commands (README): `make run` and `make test`. Each sets up what it needs first.
PORT ?= 9000
DATA ?= data

.PHONY: run test setup bench clean

run:
	@bash scripts/setup.sh run
	.venv/bin/lamina up --port $(PORT) --data-dir $(DATA)

test:
	@bash scripts/setup.sh test
	.venv/bin/lint-imports
	.venv/bin/mypy
	.venv/bin/python -m pytest

# Options go through BENCH, e.g. `make bench BENCH=--quick`.
bench:
	@bash scripts/setup.sh bench
	.venv/bin/python bench/run.py --json --plot $(BENCH)

clean:
	rm -rf .venv data bench/results
