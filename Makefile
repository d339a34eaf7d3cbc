# The two commands of the README. Each installs what it needs first, so both work on a fresh machine.
PYTHON ?= python3

.PHONY: setup run test lint

setup:  ## system packages (JDK 17, Maven) when missing, then the Python packages
	@bash scripts/install-system-packages.sh
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

run: setup  ## the service on http://localhost:8888/ on the single local Cassandra node
	$(PYTHON) -m app

test: setup  ## lint, then the whole suite against the real 3-node cluster
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
