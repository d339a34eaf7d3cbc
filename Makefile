# The two commands of the README. Each installs what it needs first, so both work on a fresh machine.
PYTHON ?= python3

.PHONY: setup run test test-unit test-schedules lint

setup:  ## system packages (JDK 17, Maven) when missing, then the Python packages
	@bash scripts/install-system-packages.sh
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# From npm: axe-core, the accessibility checker the browser test runs on every page
	@# (tests/integration/test_browser.py). The unit tier needs nothing from npm: the Compose Specification's schema
	@# travels with its test (tests/unit/compose-spec.json).
	@test -f .cache/npm/node_modules/axe-core/axe.min.js || \
		npm install --silent --no-save --no-package-lock --prefix .cache/npm axe-core@4.11.0

run: setup  ## the service on http://localhost:8888/ on the single local Cassandra node
	$(PYTHON) -m app

# The tests that must hold on both topologies run again on the single node after the 3-node pass.
BOTH_TOPOLOGIES = $(addprefix tests/integration/,test_cluster.py test_reservations.py test_interleavings.py test_move_interleavings.py test_stress.py)

test: setup  ## lint, the whole suite on the real 3-node cluster, then the core again on one node
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest tests/schedules
	$(PYTHON) -m pytest --ignore=tests/schedules
	$(PYTHON) -m cluster down
	CLUSTER_NODES=1 $(PYTHON) -m pytest -m "not three_nodes" $(BOTH_TOPOLOGIES)

# The quick loop while you work: no install step (run `make setup` or `make test` once first), no Cassandra.
test-unit:  ## the tests that need no Cassandra (tests/unit/), in seconds
	$(PYTHON) -m pytest tests/unit

# The schedule search on a model of Cassandra (no Cassandra): every schedule of a small scope, in a few minutes.
test-schedules:  ## the schedule search (tests/schedules/): every pair, every triple up to two preemptions
	$(PYTHON) -m pytest tests/schedules

lint:  ## ruff and the type checker
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
