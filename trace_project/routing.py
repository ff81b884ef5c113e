"""Every websocket path of the project: each app lists its own in its routing module."""

from tm_api.routing import websocket_urlpatterns as tm_api_paths
from traces.routing import websocket_urlpatterns as traces_paths
from tracking.routing import websocket_urlpatterns as tracking_paths

websocket_urlpatterns = [*traces_paths, *tm_api_paths, *tracking_paths]
