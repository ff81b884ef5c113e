"""WhiteNoise's middleware in Django's async middleware chain (settings.MIDDLEWARE).

It reads WhiteNoiseMiddleware's attributes autorefresh and files and calls its find_file and
serve, none of which WhiteNoise documents. plumbing/tests/test_library_internals.py fails, naming
WhiteNoise and its pinned version, when they change.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, able to run in Django's async middleware chain.

    WhiteNoise's middleware is sync-only: under daphne every request, static or not, would hop
    to a thread and back just to pass it. Here a request that is not for a static file goes on
    without leaving the event loop; only serving a file (opening it) runs in a thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None):
        super().__init__(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        return self.__acall__(request) if self.is_async else super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)
