"""Private services for tests that stop them (see private_services.py for their use)."""

import glob
import shutil

import pytest

from trace_project.tests.private_services import PrivatePostgres, PrivateRedis


def _needs(program: str, found: bool) -> None:
    """Skip (a failure in CI, see CI_NO_SKIPS) where the server programs are not installed."""
    if not found:
        pytest.skip(f"needs {program} installed (apt-get install redis-server postgresql)")


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, running; the test may kill and restart it."""
    _needs("redis-server", shutil.which("redis-server") is not None)
    redis = PrivateRedis().start()
    yield redis
    redis.close()


@pytest.fixture(scope="session")
def _private_postgres_cluster():
    _needs("PostgreSQL's initdb", bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")
                                      or shutil.which("initdb")))
    cluster = PrivatePostgres().create()
    print(f"\nprivate PostgreSQL: initdb {cluster.timings['initdb']:.2f} s, "
          f"migrate {cluster.timings['migrate']:.2f} s")
    yield cluster
    cluster.close()


@pytest.fixture
def private_postgres(_private_postgres_cluster):
    """A migrated PostgreSQL cluster of the session's own, running when the test starts (a
    test before it may have stopped it); the test may stop and restart it."""
    if not _private_postgres_cluster.running:
        _private_postgres_cluster.start()
    return _private_postgres_cluster
