from django.urls import include, path

from registry import retirement_urls, views

app_name = "registry"

urlpatterns = [
    path("retirement/", include(retirement_urls.urlpatterns)),
    path("", views.model_list, name="model-list"),
    path("models/new/", views.model_create, name="model-create"),
    path("models/<int:pk>/", views.model_detail, name="model-detail"),
    path("models/<int:pk>/versions/new/", views.version_create, name="version-create"),
    path("models/<int:pk>/compare/", views.model_compare, name="model-compare"),
    path("versions/<int:pk>/", views.version_detail, name="version-detail"),
    path("versions/<int:pk>/transition/", views.version_transition, name="version-transition"),
    path("versions/<int:pk>/benchmarks/", views.benchmark_upload, name="benchmark-upload"),
    path("versions/<int:pk>/assessments/", views.assessment_create, name="assessment-create"),
    path("versions/<int:pk>/waivers/", views.waiver_create, name="waiver-create"),
    path("waivers/<int:pk>/vote/", views.waiver_vote, name="waiver-vote"),
    path(
        "versions/<int:pk>/deployment-approvals/ask/",
        views.deployment_approvers_ask,
        name="deployment-approvers-ask",
    ),
    path(
        "versions/<int:pk>/deployment-approvals/",
        views.deployment_approve,
        name="deployment-approve",
    ),
    path("benchmarks/<int:pk>/", views.benchmark_detail, name="benchmark-detail"),
    path("benchmarks/<int:pk>/raw/", views.benchmark_raw, name="benchmark-raw"),
    path("assessments/<int:pk>/", views.assessment_detail, name="assessment-detail"),
    path("assessments/<int:pk>/decide/", views.assessment_decide, name="assessment-decide"),
    path("queue/", views.review_queue, name="review-queue"),
    path("conflicts/new/", views.conflict_create, name="conflict-create"),
    path("conflicts/<int:pk>/", views.conflict_detail, name="conflict-detail"),
    path("conflicts/<int:pk>/resolve/", views.conflict_resolve_view, name="conflict-resolve"),
    path("conflicts/<int:pk>/vote/", views.conflict_vote_view, name="conflict-vote"),
    path("protocols/", views.protocol_list, name="protocol-list"),
    path("protocols/new/", views.protocol_create, name="protocol-create"),
    path("protocols/<int:pk>/", views.protocol_detail, name="protocol-detail"),
    path("protocols/<int:pk>/approve/", views.protocol_approve, name="protocol-approve"),
]
