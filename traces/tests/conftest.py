import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from traces.consumers import close_ingest_connections


@pytest.fixture(autouse=True)
def _close_ingest_connection():
    """The ingest consumer keeps its sync thread's database connection open (for speed); close
    it after each test so the test database can be flushed and dropped. A thread of its own,
    since a browser test's thread already runs Playwright's event loop."""
    yield
    close_ingest_connections()
    closer = threading.Thread(target=lambda: asyncio.run(sync_to_async(connections.close_all)()))
    closer.start()
    closer.join()
