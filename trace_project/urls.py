from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from plumbing.health import healthz
from trace_project import overview

# The account pages keep the test-machine dashboard's paths, so old bookmarks and e-mails keep
# working.
account_urls = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset-confirm/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset-complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    path("", overview.home, name="home"),
    path("overview/panel/", overview.overview_panel, name="overview-panel"),
    path("api/overview/", overview.OverviewView.as_view(), name="api-overview"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    *account_urls,
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("docs/", RedirectView.as_view(pattern_name="api-docs", permanent=True)),
    path("", include("traces.urls")),
    path("", include("tm_api.urls")),
    path("", include("tracking.urls")),
    path("", include("notifications.urls")),
]

handler400 = "plumbing.errors.bad_request"
handler403 = "plumbing.errors.permission_denied"
handler404 = "plumbing.errors.page_not_found"
handler500 = "plumbing.errors.server_error"
