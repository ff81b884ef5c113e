import json

from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder

from plumbing.access import may_view_dashboards

# Close code for a socket refused because the visitor may not view dashboards.
CLOSE_FORBIDDEN = 4003


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Base of every browser-facing live socket.

    Subclasses name the groups to join; frames published with plumbing.publisher reach the
    browser as they were published, one websocket message each. A page may miss frames while
    its socket is closed: on_joined sends the current state, or the page refetches it over REST
    each time its socket opens. Anonymous visitors are refused unless DASHBOARDS_PUBLIC.
    """

    def live_groups(self) -> list[str]:
        raise NotImplementedError

    async def connect(self):
        if not may_view_dashboards(self.scope.get("user")):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.joined_groups = self.live_groups()
        for group in self.joined_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.on_joined()

    async def on_joined(self):
        """Hook for sending an initial snapshot once the socket is open."""

    async def disconnect(self, code):
        for group in getattr(self, "joined_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def live_frame(self, event):
        texts = event.get("texts")
        if texts is None:  # a frame sent directly (plumbing.live.send_frame)
            await self.send_json(event["data"])
            return
        # Serialised once by the publisher for every socket of the group.
        for text in texts:
            await self.send(text_data=text)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Live sockets only speak to the browser; whatever a client sends is ignored. (The
        JSON consumer's own receive raised on text that is not JSON and on binary frames,
        which ended the socket with 1011.)"""

    @classmethod
    async def encode_json(cls, content):
        return json.dumps(content, cls=DjangoJSONEncoder)


class RefusedPath(AsyncWebsocketConsumer):
    """A websocket path no app serves: the handshake fails (HTTP 403), nothing is logged."""

    async def connect(self):
        await self.close()
