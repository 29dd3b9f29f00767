"""Incidents, post-mortems, runbooks and the learning metrics."""

from django.urls import path

from incidents import views

urlpatterns = [
    path("", views.incident_list, name="incident-list"),
    path("new/", views.incident_create, name="incident-create"),
    path("metrics/", views.metrics, name="metrics"),
    path("runbooks/", views.runbook_list, name="runbook-list"),
    path("runbooks/<int:pk>/", views.runbook_detail, name="runbook-detail"),
    path("<int:pk>/", views.incident_detail, name="incident-detail"),
    path("<int:pk>/edit/", views.incident_edit, name="incident-edit"),
    path("<int:pk>/timeline/", views.timeline_add, name="timeline-add"),
    path("<int:pk>/evidence/", views.evidence_add, name="evidence-add"),
    path("<int:pk>/roles/", views.role_add, name="role-add"),
    path(
        "<int:pk>/forecast-exclusions/",
        views.forecast_exclude,
        name="incident-forecast-exclude",
    ),
    path("<int:pk>/postmortem/", views.postmortem_detail, name="postmortem"),
    path("<int:pk>/postmortem/open/", views.postmortem_open, name="postmortem-open"),
    path("<int:pk>/postmortem/submit/", views.postmortem_submit, name="postmortem-submit"),
    path("<int:pk>/postmortem/sign/", views.postmortem_sign, name="postmortem-sign"),
    path("<int:pk>/postmortem.md", views.postmortem_markdown, name="postmortem-markdown"),
]
