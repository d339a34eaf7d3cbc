"""What the command-line tools share, kept apart from the service they work on.

The service is `app/` (web -> service/repository -> Cassandra); the tools around it (`python -m seeder`,
`python -m bench`, `stress_test.py`, `unreserve_all.py`, ...) use it from outside, and the code they have in
common lives here, not inside any one of them:

- `toolkit.arguments`: the argument parser of every command line (the app's and the cluster's too), whose
  usage errors are one line with exit status 2, and bounded number arguments;
- `toolkit.cli`: naming the app's Cassandra from the command line, bounded concurrency and retries, and
  running a tool so that an expected failure is one line on stderr with exit status 2;
- `toolkit.progress`: the progress bar on stderr;
- `toolkit.stats`: the percentile of the bench's and the stress tests' latencies.

Of `app/`, only the entry point `app/__main__.py` imports it (for its command line); the service never does.
"""
