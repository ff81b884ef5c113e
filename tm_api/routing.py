from django.urls import path

import plumbing.converters  # noqa: F401 - registers <id:...>
from tm_api import consumers

websocket_urlpatterns = [
    path("ws/machine/status/", consumers.MachinesStatusConsumer.as_asgi()),
    path("ws/machine/<id:pk>/runs/", consumers.MachineRunsConsumer.as_asgi()),
    path("ws/machine/<id:pk>/last/", consumers.MachineLastRunConsumer.as_asgi()),
]
