"""Report test runs to Monitor's test-machine API (its /tm_api/ endpoints).

- `Reporter`: the HTTP client (timeouts, retries with backoff, token).
- `BackgroundReporter`: the same calls queued to a thread, so tests never wait for the server.
- `tm_reporter.sender.BatchSender`: reports sent in batches to /tm_api/batch/ from a thread,
  what is left at the end kept in a `tm_reporter.spool.Spool` for the next session.
- `tm_reporter.machine`: a virtual testing machine (dry pass, then start/stop per test).
- `tm_reporter.pytest_plugin`: `pytest --tm-url URL --tm-machine NAME`.
- `tm_reporter.cli`: `tm-reporter junit FILE... --machine NAME`, JUnit XML reports as one run.
- `tm_reporter.ci`: a run's commit, branch and build URL from the CI's environment variables.
"""

from tm_reporter.client import BackgroundReporter, Reporter, ReportError, tree, utc_now

__all__ = ["BackgroundReporter", "Reporter", "ReportError", "tree", "utc_now"]
