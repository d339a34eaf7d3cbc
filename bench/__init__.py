"""`python -m bench`: how close reserving comes to what Cassandra itself can do.

Every figure is measured against a baseline taken in the same run, on the same cluster, at the same
concurrency: the bare lightweight transaction (`INSERT ... IF NOT EXISTS` through the driver) for the
writes, a bare prepared SELECT for the reads. Absolute numbers depend on the machine; the ratios are
what the service's own overhead looks like. `python -m bench.report` turns the `--json` output into
docs/performance.md and its charts.
"""
