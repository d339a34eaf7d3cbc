"""Two tiers of tests. `tests/unit/` needs no Cassandra and runs in seconds (`make test-unit`): parsing, rules,
page tokens, the history checker, the CSV reader, the OpenAPI document against the route table, the CLIs' help.
`tests/integration/` runs on a real cluster, which its own conftest.py starts. `make test` runs both.

This file puts tests/ on the import path, so both tiers share tool_support.py."""
