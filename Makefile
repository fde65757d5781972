# The two commands of the README: `make demo` and `make test`. Both start with `make setup`.
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export OS_CLIENT_CONFIG_FILE := $(CURDIR)/var/localcloud/clouds.yaml

.PHONY: setup demo test lint unit down purge

setup:
	@scripts/setup.sh

demo: setup
	@$(BIN)/localcloud up
	@echo
	@echo "The local cloud is up. Try:"
	@echo "  export OS_CLIENT_CONFIG_FILE=$(OS_CLIENT_CONFIG_FILE) OS_CLOUD=localcloud"
	@echo "  $(BIN)/openstack server list"
	@echo "  $(BIN)/openstack image list"
	@echo "Stop it with: $(BIN)/localcloud down"

lint: setup
	@$(BIN)/ruff check .
	@$(BIN)/ansible-lint --profile production

test: setup lint
	@scripts/contract-venv.sh
	@$(BIN)/pytest

down:
	@$(BIN)/localcloud down

purge:
	@$(BIN)/localcloud down --purge
