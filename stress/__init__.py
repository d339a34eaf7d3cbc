"""The stress tests behind `python stress_test.py`: an HTTP client that records what it saw, the five
scenarios, and the checker that turns a run into PASS or a list of violations."""
