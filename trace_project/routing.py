"""Every websocket path of the project: each app lists its own in its routing module."""

from django.urls import re_path

from plumbing.consumers import RefusedPath
from tm_api.routing import websocket_urlpatterns as tm_api_paths
from traces.routing import websocket_urlpatterns as traces_paths
from tracking.routing import websocket_urlpatterns as tracking_paths

websocket_urlpatterns = [
    *traces_paths, *tm_api_paths, *tracking_paths,
    # Last: any other path (ws/trace/abc, an id of 5,000 digits) fails its handshake, as the
    # trace demo server did for a non-numeric trace id, instead of channels' "No route found" error.
    re_path(r"", RefusedPath.as_asgi()),
]
