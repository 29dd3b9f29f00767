from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from costs import views as cost_views
from governance import views

admin.site.site_header = "Capgov administration"
admin.site.site_title = "Capgov admin"
admin.site.index_title = "Organisation, billing and rules"

urlpatterns = [
    path("", cost_views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("costs/", include("costs.urls")),
    path("registry/", include("registry.urls")),
    path("incidents/", include("incidents.urls")),
    path("api/v1/", include(("governance.api.urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The docs are a page for people: send a signed-out visitor to the login page.
    path(
        "api/docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("", include("governance.app_urls")),
    path("admin/", admin.site.urls),
]
