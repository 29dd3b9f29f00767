"""Retirement pages, included in the registry's URLs (namespace ``registry``)."""

from django.urls import path

from registry import retirement_views, sprawl_views

urlpatterns = [
    path("savings/", sprawl_views.savings, name="retirement-savings"),
    path("sprawl/", sprawl_views.sprawl, name="retirement-sprawl"),
    path("sprawl/consolidate/", sprawl_views.consolidation_open, name="retirement-consolidate"),
    path("", retirement_views.case_list, name="retirement-cases"),
    path("cases/<int:pk>/", retirement_views.case_detail, name="retirement-case"),
    path("link/<str:token>/", retirement_views.link, name="retirement-link"),
    path("cases/<int:pk>/keep/", retirement_views.case_keep, name="retirement-case-keep"),
    path("cases/<int:pk>/retire/", retirement_views.case_retire, name="retirement-case-retire"),
    path("cases/<int:pk>/wait/", retirement_views.case_wait, name="retirement-case-wait"),
    path("cases/<int:pk>/act/", retirement_views.case_act, name="retirement-case-act"),
    path("cases/<int:pk>/restore/", retirement_views.case_restore, name="retirement-case-restore"),
    path("cases/<int:pk>/close/", retirement_views.case_close, name="retirement-case-close"),
    path("endpoints/", retirement_views.endpoint_list, name="retirement-endpoints"),
]
