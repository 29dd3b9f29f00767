from django.urls import path

from costs import statement_views, views

app_name = "costs"

urlpatterns = [
    path("syncs/", views.sync_run_list, name="sync-run-list"),
    path("syncs/<int:pk>/", views.sync_run_detail, name="sync-run-detail"),
    path("imports/", views.import_list, name="import-list"),
    path("imports/<int:pk>/", views.import_detail, name="import-detail"),
    path("imports/<int:pk>/status/", views.import_status, name="import-status"),
    path("statements/", statement_views.statement_months, name="statement-months"),
    path("statements/<str:month>/", statement_views.statement_month, name="statements"),
    path(
        "statements/<str:month>/export/",
        statement_views.statement_export,
        name="statement-export",
    ),
    path(
        "statements/<str:month>/publish/",
        statement_views.statement_publish,
        name="statement-publish",
    ),
    path(
        "statements/<str:month>/unpublish/",
        statement_views.statement_unpublish,
        name="statement-unpublish",
    ),
    path("statements/<str:month>/close/", statement_views.statement_close, name="statement-close"),
    path(
        "statements/<str:month>/<str:code>/",
        statement_views.statement_detail,
        name="statement-detail",
    ),
    path("reconciliation/", statement_views.reconciliation, name="reconciliation"),
    path("chargeback/", views.chargeback, name="chargeback"),
    path("chargeback/export/", views.chargeback_export, name="chargeback-export"),
    path("chargeback/resources/", views.chargeback_resources, name="chargeback-resources"),
    path("cost-per-inference/", views.cost_per_inference, name="cost-per-inference"),
    path("explorer/", views.explorer, name="explorer"),
    path("unallocated/", views.unallocated, name="unallocated"),
    path("rules/", views.rule_list, name="rule-list"),
    path("rules/new/", views.rule_create, name="rule-create"),
    path("rules/<int:pk>/", views.rule_update, name="rule-update"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("budgets/", views.budget_list, name="budget-list"),
    path("budgets/new/", views.budget_create, name="budget-create"),
    path("budgets/<int:pk>/", views.budget_detail, name="budget-detail"),
    path("budgets/<int:pk>/edit/", views.budget_update, name="budget-update"),
    path("budgets/<int:pk>/delete/", views.budget_delete, name="budget-delete"),
    path("budgets/<int:pk>/lift-freeze/", views.budget_freeze_lift, name="budget-freeze-lift"),
]
