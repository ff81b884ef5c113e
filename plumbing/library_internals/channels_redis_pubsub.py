"""A pub/sub channel layer that survives Redis outages (settings.CHANNEL_LAYERS with REDIS_URL).

A fork of channels-redis's pub/sub layer: it subclasses RedisPubSubChannelLayer,
RedisPubSubLoopLayer and RedisSingleShardConnection and uses their private attributes (_redis,
_pubsub, _shards, _layers, _get_shard, _receive_message, ...) and channels_redis.utils._wrap_close,
plus redis-py's PubSub._normalize_keys. plumbing/tests/test_library_internals.py fails, naming
channels-redis and its pinned version, when one of them changes.
"""

import asyncio
import logging
import time
from collections import Counter

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# channels-redis's RedisPubSubChannelLayer on its own, while Redis is down: group_add raises, so
# every socket that connects (a trace program's ingest socket included) fails its handshake with
# a 500; a subscription that failed is never made later, so such a socket would never hear a
# frame; and against a Redis that does not answer (frozen, or a network that drops packets) a
# publish waits for ever while holding the lock every other publish needs. This layer:
# - never raises from group_add/group_discard/new_channel/group_send for a connection failure or
#   a timeout: it logs, counts (OUTAGE_COUNTS, shown by /healthz) and keeps the subscription as
#   pending; its receiving task makes pending subscriptions as soon as Redis answers again
#   (redis-py re-makes the ones it had when its connection broke);
# - bounds every Redis call by LIVE_REDIS_TIMEOUT seconds, and after a failure drops frames at
#   once for LIVE_REDIS_RETRY seconds instead of trying again for each;
# - publishes without channels-redis's per-connection lock (redis-py's pool is made for
#   concurrent calls): with the lock, publishes went out one round trip at a time, and on a busy
#   server they queued for seconds, timed out and were dropped. group_send_many() publishes the
#   frames of several groups in one round trip (a pipeline); the publisher uses it;
# - keeps send() (to one channel) strict, so that /healthz's round trip reports the cause.
# Frames published while Redis is down are lost (pub/sub keeps nothing): live pages catch up with
# the next frame, or from the REST API when their socket (re)opens.

OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
# frames_dropped, subscriptions_deferred, subscriptions_restored, unsubscribe_failed
OUTAGE_COUNTS = Counter()


class _Shard(RedisSingleShardConnection):
    def __init__(self, host, channel_layer, timeout: float, retry: float):
        super().__init__(host, channel_layer)
        self.timeout = timeout
        self.retry = retry
        self.pending = set()  # subscriptions to make once Redis answers
        self.down_since = None  # monotonic time of the first failure of this outage
        self.down_until = 0.0  # frames are dropped at once until then

    def _failed(self, what: str, error: BaseException) -> None:
        now = time.monotonic()
        self.down_until = now + self.retry
        if self.down_since is None:
            self.down_since = now
            logger.warning("channel layer: Redis %s unavailable (%s: %s); live frames are "
                           "dropped until it answers again", self.host.get("address", self.host),
                           type(error).__name__, error)
        else:
            logger.debug("channel layer: %s failed: %r", what, error)

    def _answered(self) -> None:
        if self.down_since is not None:
            logger.warning("channel layer: Redis answers again after %.1f s",
                           time.monotonic() - self.down_since)
            self.down_since = None
        self.down_until = 0.0

    async def publish(self, channel, message):
        self._ensure_redis()
        await asyncio.wait_for(self._redis.publish(channel, message), self.timeout)
        self._answered()

    async def publish_many(self, messages) -> None:
        """[(channel, message)] in one round trip."""
        self._ensure_redis()
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, message in messages:
                pipe.publish(channel, message)
            await asyncio.wait_for(pipe.execute(), self.timeout)
        self._answered()

    async def subscribe(self, channel):
        try:
            await asyncio.wait_for(super().subscribe(channel), self.timeout)
        except OUTAGE_ERRORS as error:
            self._failed(f"subscribe {channel}", error)
            self.pending.add(channel)
            OUTAGE_COUNTS["subscriptions_deferred"] += 1
            self._ensure_receiver()
        else:
            self._answered()

    async def unsubscribe(self, channel):
        self.pending.discard(channel)
        try:
            await asyncio.wait_for(super().unsubscribe(channel), self.timeout)
        except OUTAGE_ERRORS as error:
            self._failed(f"unsubscribe {channel}", error)
            OUTAGE_COUNTS["unsubscribe_failed"] += 1
            # Not made again when redis-py reconnects; messages of it would be ignored anyway.
            self._subscribed_to.discard(channel)
            if self._pubsub is not None:
                for key in self._pubsub._normalize_keys({channel: None}):
                    self._pubsub.channels.pop(key, None)

    async def _subscribe_pending(self) -> None:
        for channel in list(self.pending):
            try:
                await asyncio.wait_for(RedisSingleShardConnection.subscribe(self, channel),
                                       self.timeout)
            except OUTAGE_ERRORS as error:
                self._failed(f"subscribe {channel}", error)
                return
            self.pending.discard(channel)
            OUTAGE_COUNTS["subscriptions_restored"] += 1
        self._answered()

    async def _do_receiving(self):
        """channels-redis's loop, with pending subscriptions made again and a short pause (not
        1 s and a logged traceback each time) while Redis is away."""
        while True:
            # asyncio.wait_for (Python 3.11) loses a cancellation that comes as the call it
            # waits on completes; this loop would then go on for ever, and the event loop's
            # shutdown (which waits for its cancelled tasks) with it. The request still counts.
            if asyncio.current_task().cancelling():
                raise asyncio.CancelledError
            try:
                if self.pending:
                    await self._subscribe_pending()
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=0.1
                    )
                    if self.down_since is not None and not self.pending:
                        self._answered()
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except OUTAGE_ERRORS as error:
                self._failed("receive", error)
                await asyncio.sleep(self.retry)
            except Exception:  # as channels-redis: log, keep receiving
                logger.exception("channel layer: unexpected error while receiving")
                await asyncio.sleep(1)


class _LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, timeout: float = 2.0, retry: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [_Shard(shard.host, self, timeout, retry) for shard in self._shards]

    async def group_send(self, group, message):
        shard = self._get_shard(self._get_group_channel_name(group))
        if time.monotonic() < shard.down_until:
            OUTAGE_COUNTS["frames_dropped"] += 1
            return
        try:
            await super().group_send(group, message)
        except OUTAGE_ERRORS as error:
            shard._failed(f"publish to {group}", error)
            OUTAGE_COUNTS["frames_dropped"] += 1

    async def group_send_many(self, messages) -> None:
        """group_send of each (group, message), in one round trip per Redis shard."""
        by_shard = {}
        for group, message in messages:
            channel = self._get_group_channel_name(group)
            by_shard.setdefault(self._get_shard(channel), []).append(
                (channel, self.channel_layer.serialize(message)))
        await asyncio.gather(*(self._publish_many(shard, items)
                               for shard, items in by_shard.items()))

    async def _publish_many(self, shard, items) -> None:
        if time.monotonic() < shard.down_until:
            OUTAGE_COUNTS["frames_dropped"] += len(items)
            return
        try:
            await shard.publish_many(items)
        except OUTAGE_ERRORS as error:
            shard._failed(f"publish to {len(items)} groups", error)
            OUTAGE_COUNTS["frames_dropped"] += len(items)

    async def forget_channel(self, channel):
        """Unsubscribe a channel made with new_channel() (channels-redis only does it when a
        receive() is cancelled)."""
        self.channels.pop(channel, None)
        await self._get_shard(channel).unsubscribe(channel)


class PubSubChannelLayer(RedisPubSubChannelLayer):
    """RedisPubSubChannelLayer that survives Redis outages (see above). CONFIG as channels-redis's,
    plus `timeout` (seconds per Redis call) and `retry` (seconds between attempts)."""

    async def group_send_many(self, messages) -> None:
        await self._get_layer().group_send_many(messages)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        if loop not in self._layers:
            from channels_redis.utils import _wrap_close

            self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return self._layers[loop]
