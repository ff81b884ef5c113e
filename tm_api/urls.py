from django.urls import path

from tm_api import views

app_name = "tm_api"

urlpatterns = [
    path("machines/", views.index, name="index"),
]
