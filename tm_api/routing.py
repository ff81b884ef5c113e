from django.urls import path

from tm_api import consumers

websocket_urlpatterns = [
    path("ws/machine/status/", consumers.MachinesStatusConsumer.as_asgi()),
    path("ws/machine/<int:pk>/runs/", consumers.MachineRunsConsumer.as_asgi()),
    path("ws/machine/<int:pk>/last/", consumers.MachineLastRunConsumer.as_asgi()),
]
