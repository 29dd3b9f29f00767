from django.urls import path

from governance import audit_views, token_views, views

app_name = "governance"

urlpatterns = [
    path("approvals/", views.request_list, name="request-list"),
    path("approvals/new/", views.request_create, name="request-create"),
    path("approvals/<int:pk>/", views.request_detail, name="request-detail"),
    path("approvals/<int:pk>/edit/", views.request_update, name="request-update"),
    path("approvals/<int:pk>/submit/", views.request_submit, name="request-submit"),
    path("approvals/<int:pk>/withdraw/", views.request_withdraw, name="request-withdraw"),
    path("approvals/<int:pk>/vote/", views.request_vote, name="request-vote"),
    path("approvals/link/<str:token>/", views.approval_link, name="approval-link"),
    path("decisions/", views.decision_list, name="decision-list"),
    path("decisions/<int:pk>/", views.decision_detail, name="decision-detail"),
    path("freezes/", views.freeze_list, name="freeze-list"),
    path("freezes/<int:pk>/lift/", views.freeze_lift, name="freeze-lift"),
    path("audit/", audit_views.audit_list, name="audit-list"),
    path("audit/export/", audit_views.audit_export, name="audit-export"),
    path("account/tokens/", token_views.token_list, name="token-list"),
    path("account/tokens/<int:pk>/revoke/", token_views.token_revoke, name="token-revoke"),
]
