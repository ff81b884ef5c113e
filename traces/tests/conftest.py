import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from traces import asyncdb
from traces.consumers import ingest_threads


def close_ingest_connections() -> None:
    """Close the database connections the ingest path keeps open (for speed) so that the test
    database can be flushed and dropped: each ingest thread's, the async pools of event loops
    that have stopped, and Django's. The last in a thread of its own, since a browser test's
    thread already runs Playwright's event loop."""
    ingest_threads.close_connections()
    asyncdb.close_pools()
    closer = threading.Thread(target=lambda: asyncio.run(sync_to_async(connections.close_all)()))
    closer.start()
    closer.join()


@pytest.fixture(autouse=True)
def _close_ingest_connection():
    yield
    close_ingest_connections()
