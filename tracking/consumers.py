from plumbing.access import may_view_dashboards
from plumbing.consumers import CLOSE_FORBIDDEN, LiveConsumer
from tracking.live import project_group
from tracking.models import Project


class ProjectMetricsConsumer(LiveConsumer):
    """A project page's socket: a frame each time new requests were stored (throttled by
    tracking.live); the page then reads the summary API."""

    async def connect(self):
        # Access first: an anonymous visitor must not learn which project ids exist.
        if not may_view_dashboards(self.scope.get("user")):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        public_id = self.scope["url_route"]["kwargs"]["project_id"]
        self.project = await Project.objects.filter(public_id=public_id).afirst()
        if self.project is None:
            await self.close(code=4004)
            return
        await super().connect()

    def live_groups(self):
        return [project_group(self.project.pk)]

    async def on_joined(self):
        await self.send_json({"type": "hello", "project": str(self.project.public_id)})
