from django.urls import path

from tracking.consumers import ProjectMetricsConsumer

websocket_urlpatterns = [
    path("ws/metrics/<uuid:project_id>/", ProjectMetricsConsumer.as_asgi()),
]
