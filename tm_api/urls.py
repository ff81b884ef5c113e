"""Included at the site root: the seed's REST paths under /tm_api/ and the pages under
/machines/ (the seed's page paths redirect there)."""

from django.urls import path
from django.views.generic import RedirectView

from tm_api import pages, views

app_name = "tm_api"

urlpatterns = [
    # REST for machines (write) and pages (read): the seed's paths, unchanged.
    path("tm_api/dry_run/", views.dry_run_view, name="dry-run-input"),
    path("tm_api/test_start/", views.test_start_view, name="test-start"),
    path("tm_api/test_stop/", views.test_stop_view, name="test-stop"),
    path("tm_api/test/<int:pk>", views.TestDetailView.as_view(), name="test-detail"),
    path("tm_api/scenario/<int:pk>", views.ScenarioDetailView.as_view(), name="scenario-detail"),
    path("tm_api/master_scenario/<int:pk>", views.MasterScenarioDetailView.as_view(),
         name="master-scenario-detail"),
    path("tm_api/machines/", views.MachineListView.as_view(), name="machine-list"),
    path("tm_api/machine_dry_run_datas/<int:pk>", views.MachineDryRunDatasView.as_view(),
         name="machine-dry-run-datas"),
    path("tm_api/machine_last_data/<int:pk>/", views.MachineLastDataView.as_view(),
         name="machine-last-data"),
    # Pages.
    path("machines/", pages.machine_list, name="index"),
    path("machines/<int:pk>/", pages.machine_detail, name="machine"),
    path("machines/<int:pk>/last/", pages.machine_last_run, name="machine-last"),
    path("machines/runs/<int:pk>/", pages.run_detail, name="run"),
    path("machines/script/<str:kind>/<int:pk>/", pages.script, name="script"),
    # The seed's page paths ([sic] "matchine"), for old bookmarks.
    path("matchine/<int:pk>", RedirectView.as_view(pattern_name="tm_api:machine")),
    path("machine/<int:pk>/last", RedirectView.as_view(pattern_name="tm_api:machine-last")),
    path("machine/run_data/<int:pk>", RedirectView.as_view(pattern_name="tm_api:run")),
]
