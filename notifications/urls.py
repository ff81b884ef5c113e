from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("notifications/", views.index, name="index"),
    path("notifications/channels/<int:channel_id>/test/", views.send_test, name="send-test"),
]
