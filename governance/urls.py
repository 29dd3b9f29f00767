from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from costs import views as cost_views
from governance import auth_oidc, metrics, views

admin.site.site_header = "Capgov administration"
admin.site.site_title = "Capgov admin"
admin.site.index_title = "Organisation, billing and rules"

urlpatterns = [
    path("", cost_views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Prometheus: a bearer token (CAPGOV_METRICS_TOKEN) or a signed-in platform admin.
    path("metrics", metrics.metrics_view, name="metrics"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", auth_oidc.LoginView.as_view(), name="login"),
    # Single sign-on (OIDC): 404 unless configured; mozilla-django-oidc reverses these names.
    path("oidc/authenticate/", auth_oidc.SsoStartView.as_view(), name="oidc_authentication_init"),
    path(
        "oidc/callback/", auth_oidc.SsoCallbackView.as_view(), name="oidc_authentication_callback"
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("costs/", include("costs.urls")),
    path("registry/", include("registry.urls")),
    path("incidents/", include("incidents.urls")),
    path("api/v1/", include(("governance.api.urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The docs are a page for people: send a signed-out visitor to the login page. The split
    # view serves Swagger UI's start-up script from ?script, so the CSP needs no inline script.
    path(
        "api/docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("", include("governance.app_urls")),
    path("admin/", admin.site.urls),
]
