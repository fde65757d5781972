# The two commands of the README: `make demo` and `make test`. Both start with `make setup`.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint unit down purge

setup:
	@scripts/setup.sh

demo: setup
	@$(BIN)/localcloud up
	@scripts/demo.sh

lint: setup
	@$(BIN)/ruff check .
	@$(BIN)/ansible-lint --profile production

test: setup lint
	@scripts/contract-venv.sh
	@$(BIN)/pytest

down:
	@$(BIN)/localcloud site down
	@$(BIN)/localcloud down

purge:
	@$(BIN)/localcloud site down
	@$(BIN)/localcloud down --purge
