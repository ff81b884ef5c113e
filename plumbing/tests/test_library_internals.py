"""The private parts of libraries that plumbing/library_internals/ relies on are still there.

Each check names the library and the version requirements.txt pins: when an upgrade fails one,
the module named in the message needs a look before the upgrade goes in (or the pin stays)."""

import asyncio
import inspect
import re
import threading
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, sync_to_async

pytestmark = pytest.mark.unit

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def pinned(package: str) -> str:
    """'channels-redis==4.3.0', as requirements.txt pins it."""
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if match and match.group(1).lower().replace("_", "-") == package:
            return f"{match.group(1)}=={match.group(3)}"
    raise AssertionError(f"{package} is not pinned in requirements.txt")


def require(package: str, module: str, ok: bool, what: str) -> None:
    if not ok:
        pytest.fail(f"{pinned(package)}: {what} changed or is gone; "
                    f"plumbing/library_internals/{module}.py relies on it.", pytrace=False)


def source(obj) -> str:
    return inspect.getsource(obj)


def has_methods(cls, *names) -> bool:
    return all(callable(getattr(cls, name, None)) for name in names)


def test_every_library_named_here_is_pinned():
    for package in ("channels", "channels-redis", "redis", "daphne", "twisted", "uvicorn", "whitenoise",
                    "django", "asgiref", "psycopg-pool"):
        assert "==" in pinned(package)


def test_channels_redis_pubsub_layer():
    from channels_redis import pubsub, utils
    from redis.asyncio.client import PubSub

    module = "channels_redis_pubsub"
    require("channels-redis", module, callable(getattr(utils, "_wrap_close", None)),
            "channels_redis.utils._wrap_close(layer, loop)")
    require("channels-redis", module,
            list(inspect.signature(pubsub.RedisSingleShardConnection.__init__).parameters)
            == ["self", "host", "channel_layer"],
            "RedisSingleShardConnection.__init__(host, channel_layer)")
    require("channels-redis", module,
            has_methods(pubsub.RedisSingleShardConnection, "_ensure_redis", "_ensure_receiver",
                        "_receive_message", "_do_receiving", "subscribe", "unsubscribe",
                        "publish"),
            "RedisSingleShardConnection's methods _ensure_redis, _ensure_receiver, "
            "_receive_message, _do_receiving")
    shard = source(pubsub.RedisSingleShardConnection)
    for attribute in ("self._redis", "self._pubsub", "self._subscribed_to", "self.host"):
        require("channels-redis", module, attribute in shard,
                f"RedisSingleShardConnection's attribute {attribute}")
    require("channels-redis", module,
            has_methods(pubsub.RedisPubSubLoopLayer, "_get_shard", "_get_group_channel_name",
                        "group_send"),
            "RedisPubSubLoopLayer's _get_shard and _get_group_channel_name")
    loop_layer = source(pubsub.RedisPubSubLoopLayer)
    for attribute in ("self._shards", "self.channel_layer", "self.channels"):
        require("channels-redis", module, attribute in loop_layer,
                f"RedisPubSubLoopLayer's attribute {attribute}")
    layer = pubsub.RedisPubSubChannelLayer(hosts=[{"address": "redis://127.0.0.1:1"}])
    require("channels-redis", module,
            callable(getattr(layer, "_get_layer", None))
            and all(hasattr(layer, name) for name in ("_layers", "_args", "_kwargs")),
            "RedisPubSubChannelLayer's _get_layer, _layers, _args and _kwargs")
    require("redis", module, callable(getattr(PubSub, "_normalize_keys", None))
            and "self.channels" in source(PubSub),
            "redis.asyncio.client.PubSub._normalize_keys and PubSub.channels")


def test_channels_in_memory_layer():
    from channels.layers import InMemoryChannelLayer

    layer = InMemoryChannelLayer()
    require("channels", "channels_memory",
            isinstance(getattr(layer, "groups", None), dict)
            and callable(getattr(layer, "_clean_expired", None))
            and "self.groups[group][channel] = " in source(InMemoryChannelLayer.group_add),
            "InMemoryChannelLayer.groups ({group: {channel: join time}}) and _clean_expired()")


def test_daphne_and_twisted_request_hooks():
    from daphne.http_protocol import WebRequest
    from twisted.web import http

    module = "daphne_requests"
    require("daphne", module, issubclass(WebRequest, http.Request),
            "daphne.http_protocol.WebRequest as a twisted.web.http.Request")
    require("twisted", module,
            "parsePOSTFormSubmission" in inspect.signature(http.Request.__init__).parameters,
            "twisted.web.http.Request(parsePOSTFormSubmission=...)")
    require("twisted", module,
            has_methods(http.HTTPChannel, "dataReceived", "allHeadersReceived",
                        "allContentReceived", "connectionLost"),
            "HTTPChannel's hooks dataReceived, allHeadersReceived, allContentReceived, "
            "connectionLost")
    channel = source(http.HTTPChannel)
    require("twisted", module,
            "self.allHeadersReceived()" in channel and "self.allContentReceived()" in channel,
            "HTTPChannel calling allHeadersReceived() and allContentReceived() itself")


def test_uvicorn_httptools_protocol_hooks():
    from uvicorn.protocols.http import httptools_impl

    protocol = httptools_impl.HttpToolsProtocol
    require("uvicorn", "uvicorn_protocol",
            has_methods(protocol, "connection_made", "connection_lost", "on_message_begin",
                        "on_headers_complete"),
            "HttpToolsProtocol's connection_made, connection_lost, on_message_begin, "
            "on_headers_complete")
    text = source(protocol)
    for attribute in ("self.loop", "self.transport", "self.client"):
        require("uvicorn", "uvicorn_protocol", attribute in text,
                f"HttpToolsProtocol's attribute {attribute}")


def test_uvicorn_fd_socket():
    import socket

    from uvicorn import server

    require("uvicorn", "uvicorn_fd",
            getattr(server, "socket", None) is socket
            and "socket.fromfd(config.fd," in source(server.Server.startup),
            "uvicorn.server calling the socket module's fromfd for --fd")


def test_whitenoise_middleware_internals(settings):
    from whitenoise.middleware import WhiteNoiseMiddleware

    middleware = WhiteNoiseMiddleware(lambda request: None)
    require("whitenoise", "whitenoise_static",
            hasattr(middleware, "autorefresh") and isinstance(getattr(middleware, "files", None),
                                                              dict)
            and has_methods(WhiteNoiseMiddleware, "find_file", "serve"),
            "WhiteNoiseMiddleware's autorefresh, files, find_file and serve")


def test_django_asgi_handler_internals():
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.base import BaseHandler
    from django.http import HttpResponse

    module = "django_asgi_handler"
    require("django", module,
            has_methods(ASGIHandler, "read_body", "create_request", "send_response",
                        "run_get_response", "make_view_atomic", "_get_response_async"),
            "ASGIHandler's read_body, create_request, send_response, run_get_response, "
            "make_view_atomic, _get_response_async")
    loading = source(BaseHandler.load_middleware)
    for attribute in ("self._view_middleware", "self._template_response_middleware",
                      "self._exception_middleware", "self._middleware_chain"):
        require("django", module, attribute in loading,
                f"BaseHandler.load_middleware setting {attribute}")
    require("django", module,
            "_resource_closers.append(request.close)" in source(BaseHandler.get_response_async)
            and isinstance(HttpResponse()._resource_closers, list),
            "HttpResponse._resource_closers, closed by get_response_async")
    require("django", module,
            "self.resolve_request(request)" in source(BaseHandler._get_response_async)
            and "request.resolver_match = resolver_match" in source(BaseHandler.resolve_request),
            "BaseHandler._get_response_async calling resolve_request, which sets "
            "request.resolver_match")


def test_django_sql_compiler_parts():
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    module = "django_compiled_query"
    query = Permission.objects.select_related("content_type").filter(codename="x")[:1].query
    compiler = query.get_compiler(connection=connection)
    compiler.as_sql()
    require("django", module, isinstance(getattr(compiler, "col_count", None), int)
            and isinstance(getattr(compiler, "select", None), list),
            "SQLCompiler.select (column, sql, alias) and SQLCompiler.col_count after as_sql()")
    columns = [column for column, _, _ in compiler.select[:compiler.col_count]]
    require("django", module,
            {column.target.model for column in columns} == {Permission, ContentType}
            and all(isinstance(column.target.attname, str) for column in columns),
            "the selected columns' fields (Col.target.model and .attname)")
    require("django", module, has_methods(compiler, "get_converters", "apply_converters")
            and list(inspect.signature(compiler.apply_converters).parameters)
            == ["rows", "converters"],
            "SQLCompiler.get_converters(expressions) and apply_converters(rows, converters)")


def test_django_postgresql_query_log_and_psycopg_preparation():
    import psycopg
    from django.db.backends.postgresql.operations import DatabaseOperations

    module = "django_compiled_query"
    require("django", module,
            "cursor._query.query" in source(DatabaseOperations.last_executed_query),
            "the PostgreSQL query log reading a client-binding cursor's _query.query")
    require("psycopg", module,
            any("_query" in getattr(cls, "__slots__", ()) for cls in psycopg.Cursor.__mro__),
            "Cursor._query (a slot of the cursor's base class)")
    require("psycopg", module,
            "prepare" in inspect.signature(psycopg.Cursor.execute).parameters,
            "Cursor.execute(..., prepare=True)")


def test_asgiref_caller_records():
    from plumbing.library_internals.asgiref_threads import (
        called_from_sync_code,
        calling_event_loop,
    )

    async def from_sync_caller():
        return called_from_sync_code()

    require("asgiref", "asgiref_threads", async_to_sync(from_sync_caller)() is True,
            "AsyncToSync.executors.current, set while async_to_sync waits")
    require("asgiref", "asgiref_threads", asyncio.run(from_sync_caller()) is False,
            "AsyncToSync.executors.current, unset on a plain event loop")

    async def loop_seen_from_a_thread():
        return asyncio.get_running_loop(), await sync_to_async(calling_event_loop)()

    loop, seen = asyncio.run(loop_seen_from_a_thread())
    require("asgiref", "asgiref_threads", seen is loop,
            "SyncToAsync.threadlocal.main_event_loop(_pid) in sync_to_async's threads")
    seen_elsewhere = []
    thread = threading.Thread(target=lambda: seen_elsewhere.append(calling_event_loop()))
    thread.start()
    thread.join()
    require("asgiref", "asgiref_threads", seen_elsewhere == [None],
            "SyncToAsync.threadlocal, empty in a thread sync_to_async never used")


def test_psycopg_pool_idle_connections():
    from psycopg_pool import AsyncConnectionPool

    require("psycopg-pool", "psycopg_pool_idle",
            "self._pool" in source(AsyncConnectionPool) and "self._pool.append" in
            source(AsyncConnectionPool),
            "AsyncConnectionPool._pool, the deque of idle connections")
