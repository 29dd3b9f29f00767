"""The data-retention audit page: policies, storage and its cost, what is kept past policy,
the runs, and (for platform admins) editing policies, dry runs and pruning now."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from costs import retention
from costs.models import DataClass, RetentionPolicy
from governance.choices import Role
from governance.exceptions import DomainError, PermissionDeniedError
from governance.permissions import cost_manager_required

RECENT_RUNS = 20


class RetentionPolicyForm(forms.Form):
    keep_days = forms.IntegerField(min_value=1, max_value=36_500, label="Keep (days)")
    prune = forms.BooleanField(required=False, label="Prune daily")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, policy: RetentionPolicy, **kwargs) -> None:
        kwargs.setdefault(
            "initial", {"keep_days": policy.keep_days, "prune": policy.prune, "notes": policy.notes}
        )
        kwargs.setdefault("prefix", f"policy-{policy.pk}")
        super().__init__(*args, **kwargs)
        self.policy = policy
        if policy.data_class == DataClass.AUDIT_HISTORY:
            del self.fields["prune"]  # never pruned: nothing to switch on


class RetentionRunForm(forms.Form):
    action = forms.ChoiceField(choices=[("dry_run", "Dry run"), ("prune", "Prune now")])
    data_class = forms.ChoiceField(
        choices=[("", "Every class"), *DataClass.choices], required=False, label="Data class"
    )


def _is_platform_admin(request: HttpRequest) -> bool:
    return request.user.has_role(Role.PLATFORM_ADMIN)


@cost_manager_required
def retention_audit(request: HttpRequest) -> HttpResponse:
    """Finance and platform admins: what each class of data takes and what is past policy."""
    reports = retention.retention_report()
    admin = _is_platform_admin(request)
    price, currency = retention.storage_price()
    return render(
        request,
        "costs/retention_audit.html",
        {
            "reports": [
                (report, RetentionPolicyForm(policy=report.policy) if admin else None)
                for report in reports
            ],
            "runs": list(retention.retention_run_list()[:RECENT_RUNS]),
            "run_form": RetentionRunForm() if admin else None,
            "may_edit": admin,
            "price": price,
            "currency": currency,
            "methods": retention.STORAGE_METHODS,
            "methods_used": sorted({m for report in reports for m in report.methods}),
            "run_actions": [
                ("dry_run", "Dry run", ""),
                (
                    "prune",
                    "Prune now",
                    "Prune now? Data past its policy is compacted or deleted where the policy "
                    "allows it; this cannot be undone.",
                ),
            ],
            "total_bytes": sum(r.bytes for r in reports),
            "total_cost": sum((r.monthly_cost for r in reports), start=price * 0),
            "past_cost": sum((r.past_cost for r in reports), start=price * 0),
        },
    )


@require_POST
@cost_manager_required
def retention_policy_update(request: HttpRequest, pk: int) -> HttpResponse:
    if not _is_platform_admin(request):
        raise PermissionDenied("Retention policies are changed by platform admins.")
    policy = get_object_or_404(RetentionPolicy, pk=pk)
    form = RetentionPolicyForm(request.POST, policy=policy)
    if not form.is_valid():
        problems = "; ".join(
            f"{form.fields[name].label or name}: {' '.join(errors)}"
            if name in form.fields
            else " ".join(errors)
            for name, errors in form.errors.items()
        )
        messages.error(request, f"{policy.get_data_class_display()} not changed — {problems}")
        return redirect("costs:retention")
    try:
        retention.retention_policy_update(
            policy=policy,
            by=request.user,
            keep_days=form.cleaned_data["keep_days"],
            prune=form.cleaned_data.get("prune", False),
            notes=form.cleaned_data["notes"],
        )
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Policy saved: {policy}.")
    return redirect("costs:retention")


@require_POST
@cost_manager_required
def retention_run(request: HttpRequest) -> HttpResponse:
    """A dry run or pruning now, of one class or every class (platform admins)."""
    if not _is_platform_admin(request):
        raise PermissionDenied("Pruning is for platform admins.")
    form = RetentionRunForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a dry run or prune now, and a data class.")
        return redirect("costs:retention")
    dry_run = form.cleaned_data["action"] == "dry_run"
    data_class = form.cleaned_data["data_class"]
    try:
        runs = retention.retention_prune_all(
            dry_run=dry_run, classes=[data_class] if data_class else None, by=request.user
        )
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc
    removed = sum(r.rows_removed for r in runs)
    added = sum(r.rows_added for r in runs)
    failed = [r for r in runs if r.error]
    verb = "would remove" if dry_run else "removed"
    text = f"{'Dry run' if dry_run else 'Pruned'}: {verb} {removed:,} rows or files"
    text += f" and {'would add' if dry_run else 'added'} {added:,} monthly aggregates."
    if failed:
        messages.error(request, f"{text} {len(failed)} run(s) stopped: {failed[0].error}")
    else:
        messages.success(request, text)
    return redirect("costs:retention")


@cost_manager_required
def retention_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(retention.retention_run_list(), pk=pk)
    return render(request, "costs/retention_run.html", {"run": run})
