"""The embedded channel layer (settings.CHANNEL_LAYERS without REDIS_URL): channels'
InMemoryChannelLayer, made to say whether a group has a socket in it.

It reads InMemoryChannelLayer's `groups` attribute ({group: {channel: join time}}) and calls its
`_clean_expired()`; plumbing/tests/test_library_internals.py fails, naming channels and its
pinned version, when either changes.

Every socket this layer serves is in this process, so `listened(group)` is exact: the live
publisher (plumbing/publisher.py) neither builds nor sends the frames of a group nobody is in
(an OTLP batch touches 32 traces whose pages are almost never open; each frame cost the ingest
path's one core its bookkeeping, JSON and a group_send). A page that opens later loses nothing:
its socket joins the group first and then reads the current state. channels' own group_send
also sweeps every channel and group for expired messages on each call; group_send_many sweeps
once for all the groups of one round.
"""

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    def listened(self, group: str) -> bool:
        """Whether a socket is in `group` now."""
        return bool(self.groups.get(group))

    async def group_send_many(self, messages) -> None:
        """[(group, message)]: each group's message to its sockets, one expiry sweep for all."""
        self._clean_expired()
        for group, message in messages:
            for channel in list(self.groups.get(group, ())):
                try:
                    await self.send(channel, message)
                except ChannelFull:  # channels' group_send drops it too
                    pass
