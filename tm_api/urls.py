"""Included at the site root: the test-machine API's paths under /tm_api/ and the pages under
/machines/ (the earlier dashboard's page paths redirect there)."""

from django.urls import include, path
from django.views.generic import RedirectView

import plumbing.converters  # noqa: F401 - registers <id:...>
from tm_api import batch, history_views, pages, results, views

app_name = "tm_api"

# REST for machines (write) and pages (read): the test-machine API's paths under /tm_api/, unchanged.
api = [
    path("dry_run/", views.dry_run_view, name="dry-run-input"),
    path("test_start/", views.test_start_view, name="test-start"),
    path("test_stop/", views.test_stop_view, name="test-stop"),
    path("batch/", batch.batch_view, name="batch"),
    path("junit/", views.junit_view, name="junit"),
    path("test/<id:pk>", views.TestDetailView.as_view(), name="test-detail"),
    path("scenario/<id:pk>", views.ScenarioDetailView.as_view(), name="scenario-detail"),
    path("master_scenario/<id:pk>", views.MasterScenarioDetailView.as_view(),
         name="master-scenario-detail"),
    path("machines/", views.MachineListView.as_view(), name="machine-list"),
    path("machine_dry_run_datas/<id:pk>", views.MachineDryRunDatasView.as_view(),
         name="machine-dry-run-datas"),
    path("machine_last_data/<id:pk>/", views.MachineLastDataView.as_view(),
         name="machine-last-data"),
]

urlpatterns = [
    path("tm_api/", include(api)),
    # Tests across runs (read API; quarantine writes need a logged-in user).
    path("api/tests/history/", history_views.TestHistoryView.as_view(), name="api-test-history"),
    path("api/tests/flaky/", history_views.FlakyTestsView.as_view(), name="api-flaky-tests"),
    path("api/tests/quarantine/", history_views.QuarantineView.as_view(),
         name="api-quarantine"),
    path("api/runs/compare/", history_views.CompareRunsView.as_view(), name="api-compare-runs"),
    # A run's tests and their results.
    path("api/runs/<id:run>/tests/", results.RunTestsView.as_view(), name="run-tests"),
    path("api/runs/<id:run>/tests/<id:pk>/", results.RunTestDetailView.as_view(),
         name="run-test"),
    # Pages.
    path("machines/", pages.machine_list, name="index"),
    path("machines/<id:pk>/", pages.machine_detail, name="machine"),
    path("machines/<id:pk>/last/", pages.machine_last_run, name="machine-last"),
    path("machines/runs/<id:pk>/", pages.run_detail, name="run"),
    path("machines/script/<str:kind>/<id:pk>/", pages.script, name="script"),
    path("machines/tests/history/", pages.test_history, name="test-history"),
    path("machines/tests/flaky/", pages.flaky_tests, name="flaky"),
    path("machines/tests/quarantine/", pages.quarantine, name="quarantine"),
    path("machines/compare/", pages.compare_runs, name="compare"),
    # The earlier dashboard's page paths ([sic] "matchine"), for old bookmarks.
    path("matchine/<id:pk>", RedirectView.as_view(pattern_name="tm_api:machine")),
    path("machine/<id:pk>/last", RedirectView.as_view(pattern_name="tm_api:machine-last")),
    path("machine/run_data/<id:pk>", RedirectView.as_view(pattern_name="tm_api:run")),
]
