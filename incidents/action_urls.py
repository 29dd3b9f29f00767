"""Action items: add, change and close them from the post-mortem; every item; the overdue ones."""

from django.urls import path

from incidents import action_views

urlpatterns = [
    path("actions/", action_views.action_list, name="actions"),
    path("actions/overdue/", action_views.actions_overdue, name="actions-overdue"),
    path("<int:pk>/actions/new/", action_views.action_create, name="action-create"),
    path("actions/<int:pk>/edit/", action_views.action_update, name="action-update"),
    path("actions/<int:pk>/close/", action_views.action_close, name="action-close"),
]
