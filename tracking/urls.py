from django.urls import include, path

from tracking import views

app_name = "tracking"

api = [
    path("ingest/", views.batch_ingest, name="batch-ingest"),
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<uuid:project_id>/summary/", views.SummaryView.as_view(), name="api-summary"),
    path("projects/<uuid:project_id>/requests/", views.RequestListView.as_view(),
         name="api-requests"),
]

urlpatterns = [
    # The legacy tracker posts to urljoin(BACKEND_ENDPOINT, PROJECT_ID): no slash.
    path("tracking/<str:project_id>", views.seed_ingest, name="seed-ingest"),
    path("api/tracking/", include(api)),
    path("metrics/", views.index, name="index"),
    path("metrics/<uuid:project_id>/", views.project_page, name="project"),
]
