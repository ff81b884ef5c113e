"""What asgiref knows about the threads and event loop of the current call.

asgiref keeps these in private class attributes: AsyncToSync.executors (the executor of a sync
caller waiting in async_to_sync) and SyncToAsync.threadlocal (the event loop a sync_to_async
thread was called from). plumbing/tests/test_library_internals.py fails, naming asgiref and its
pinned version, when they change.
"""

from asgiref.sync import AsyncToSync, SyncToAsync


def called_from_sync_code() -> bool:
    """A test client or async_to_sync: that caller's thread holds the connection (and maybe the
    transaction) the view must use, as Django would run a sync view."""
    return getattr(AsyncToSync.executors, "current", None) is not None


def calling_event_loop():
    """The event loop this thread of sync_to_async was called from, None elsewhere."""
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) is None:
        return None
    return getattr(SyncToAsync.threadlocal, "main_event_loop", None)
