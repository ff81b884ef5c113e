"""Every piece of this project that relies on private parts of a library, and nothing else.

Each module says which private attributes or signatures it uses; plumbing/tests/
test_library_internals.py checks each of them against the installed library and fails with the
library's name and the version requirements.txt pins, so that an upgrade that changes one is
caught by the suite rather than in production:

- channels_redis_pubsub: channels-redis's pub/sub layer, made to survive Redis outages;
- channels_memory: channels' in-memory layer, made to say whether a group has a socket;
- daphne_requests: daphne's WebRequest and Twisted's HTTPChannel (bodies left to Django, a
  deadline on request headers);
- uvicorn_protocol: uvicorn's httptools protocol with the same deadline on request headers;
- uvicorn_fd: uvicorn serving an inherited TCP socket (`--fd`) as TCP, not as a Unix socket;
- whitenoise_static: WhiteNoise's middleware in Django's async chain;
- django_asgi_handler: Django's ASGIHandler with the lean path's middleware chain;
- asgiref_threads: asgiref's record of the caller of the current sync/async hop;
- psycopg_pool_idle: closing a psycopg_pool pool's idle connections after its loop stopped.
"""
