"""Contributing factors: accept or dismiss a suggestion (namespace ``incidents``)."""

from django.urls import path

from incidents import factor_views

urlpatterns = [
    path("factors/<int:pk>/accept/", factor_views.factor_accept_view, name="factor-accept"),
    path("factors/<int:pk>/dismiss/", factor_views.factor_dismiss_view, name="factor-dismiss"),
]
