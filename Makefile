# The two commands of the README. Each installs what it needs first, so both work on a fresh machine.
# The Python packages go into the project's own virtual environment, .venv/ (git-ignored), never into the system's
# Python: uv builds it from uv.lock, which pins every package with its hashes, and everything below runs from it.
# PYTHON is only the interpreter .venv/ is made from; nothing is installed into it.
PYTHON ?= python3
VENV_PYTHON := .venv/bin/python
UV_HOME := .cache/uv-bootstrap
UV := $(UV_HOME)/bin/uv
# uv uses $(PYTHON) as it is and never downloads an interpreter of its own.
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup system-packages lock run test test-unit test-schedules test-schedules-deep test-grow-shrink lint

setup: system-packages $(UV)  ## system packages (JDK 17, Maven...) when missing, then .venv/ exactly as uv.lock says
	$(UV) sync --locked --quiet --python $(PYTHON)
	@# From npm: axe-core, the accessibility checker the browser test runs on every page
	@# (tests/integration/test_browser.py). The unit tier needs nothing from npm: the Compose Specification's schema
	@# travels with its test (tests/unit/compose-spec.json).
	@test -f .cache/npm/node_modules/axe-core/axe.min.js || \
		npm install --silent --no-save --no-package-lock --prefix .cache/npm axe-core@4.11.0

system-packages:
	@PYTHON=$(PYTHON) bash scripts/install-system-packages.sh

# uv itself comes from PyPI, the version and wheel hashes of scripts/uv-bootstrap.txt, installed by pip into a
# virtual environment of its own: pip never runs on the system's interpreter, and the one thing taken on trust is the
# venv module of the Python the project runs on anyway. Made again only when that file changes.
$(UV): scripts/uv-bootstrap.txt
	rm -rf $(UV_HOME)
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check --require-hashes --only-binary :all: \
		-r scripts/uv-bootstrap.txt
	@touch $@

# After a change to the dependencies in pyproject.toml: uv.lock, then requirements.txt (what the Dockerfile installs),
# both committed. `make lint` fails while either is out of date.
lock: $(UV)  ## uv.lock and requirements.txt again from pyproject.toml
	$(UV) lock --quiet --python $(PYTHON)
	$(UV) export --locked --quiet --no-dev --no-emit-project > requirements.txt

run: setup  ## the service on http://localhost:8888/ on the single local Cassandra node
	$(VENV_PYTHON) -m app

# The tests that must hold on both topologies run again on the single node after the 3-node pass.
BOTH_TOPOLOGIES = $(addprefix tests/integration/,test_cluster.py test_reservations.py test_interleavings.py test_move_interleavings.py test_stress.py)

test: setup  ## lint, the whole suite on the real 3-node cluster, the core again on one node, then two datacenters
	@$(MAKE) --no-print-directory lint
	$(VENV_PYTHON) -m pytest tests/schedules
	$(VENV_PYTHON) -m pytest --ignore=tests/schedules
	$(VENV_PYTHON) -m cluster down
	CLUSTER_NODES=1 $(VENV_PYTHON) -m pytest -m "not three_nodes" $(BOTH_TOPOLOGIES)
	$(VENV_PYTHON) -m cluster down
	$(VENV_PYTHON) -m cluster up --dcs 2
	$(VENV_PYTHON) -m pytest -m two_datacenters tests/integration/test_two_datacenters.py

# The grow-and-shrink test in full (about 7 minutes on two cores): node 4 joins, node 2 (an original) leaves and rejoins
# wiped, node 4 leaves, under stress test 2. `make test` runs its shorter form (node 4 joins and leaves).
test-grow-shrink: | $(VENV_PYTHON)  ## the cluster growing and shrinking under load, an original node leaving too
	$(VENV_PYTHON) -m cluster up --nodes 3
	GROW_SHRINK_ORIGINAL=1 $(VENV_PYTHON) -m pytest tests/integration/test_grow_shrink.py

# The quick loop while you work: no install step (run `make setup` or `make test` once first), no Cassandra.
test-unit: | $(VENV_PYTHON)  ## the tests that need no Cassandra (tests/unit/), in seconds
	$(VENV_PYTHON) -m pytest tests/unit

# The schedule search on a model of Cassandra (no Cassandra): every schedule of a small scope, in a few minutes.
test-schedules: | $(VENV_PYTHON)  ## the schedule search (tests/schedules/): every pair, every triple up to two preemptions
	$(VENV_PYTHON) -m pytest tests/schedules

# The same, with the queue's triples searched with two preemptions as well (about five CPU minutes more).
test-schedules-deep: | $(VENV_PYTHON)  ## the schedule search with every triple, the queue's too, up to two preemptions
	SCHEDULES_DEEP=1 $(VENV_PYTHON) -m pytest tests/schedules

lint: | $(VENV_PYTHON) $(UV)  ## ruff, the type checker, and uv.lock and requirements.txt in step with pyproject.toml
	$(VENV_PYTHON) -m ruff check .
	$(VENV_PYTHON) -m mypy
	@$(UV) lock --check --quiet --python $(PYTHON) || { echo "uv.lock is out of date: run make lock" >&2; exit 1; }
	@$(UV) export --locked --quiet --no-dev --no-emit-project | cmp -s - requirements.txt || \
		{ echo "requirements.txt is not what uv.lock says: run make lock" >&2; exit 1; }

$(VENV_PYTHON):
	@echo "no .venv/ here yet: run make setup (or make test) once first" >&2; exit 1
