"""What the command-line tools share, kept apart from the service they work on.

The service is `app/` (web -> service/repository -> Cassandra); the tools around it (`python -m seeder`,
`python -m bench`, `stress_test.py`, `unreserve_all.py`, ...) use it from outside, and the code they have in
common lives here, not inside any one of them:

- `toolkit.cli`: naming the app's Cassandra from the command line, bounded concurrency and retries, and
  running a tool so that an expected failure is one line on stderr with exit status 2;
- `toolkit.progress`: the progress bar on stderr.

Nothing in `app/` imports this package.
"""
