import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections


@pytest.fixture(autouse=True)
def _close_ingest_connection():
    """The ingest consumer keeps its sync thread's database connection open (for speed); close
    it after each test so the test database can be flushed and dropped."""
    yield
    asyncio.run(sync_to_async(connections.close_all)())
