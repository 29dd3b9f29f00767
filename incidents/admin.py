"""Admin for incidents. Runbooks are written here by platform admins; incidents, post-mortems,
their factors and action items are read-only here, because their changes go through the
services (checked transitions, sign-off, the timeline)."""

from django.contrib import admin

from governance.admin import PlatformAdminOnly, ReadOnlyInline
from incidents.models import (
    ActionItem,
    AffectedSubject,
    CapacityEvidence,
    ContributingFactor,
    Incident,
    IncidentRole,
    PostMortem,
    Runbook,
    SignOff,
    TimelineEvent,
)
from registry.admin import ReadOnly


@admin.register(Runbook)
class RunbookAdmin(PlatformAdminOnly):
    list_display = ("title", "incident_type", "updated_at")
    list_filter = ("incident_type",)
    search_fields = ("title", "summary")


class IncidentRoleInline(ReadOnlyInline):
    model = IncidentRole


class AffectedInline(ReadOnlyInline):
    model = AffectedSubject
    fields = ("subject_type", "subject_id")


class TimelineInline(ReadOnlyInline):
    model = TimelineEvent
    fields = ("at", "kind", "text", "source", "added_by")


class EvidenceInline(ReadOnlyInline):
    model = CapacityEvidence
    fields = ("at", "metric", "value", "unit", "source")


@admin.register(Incident)
class IncidentAdmin(ReadOnly):
    list_display = ("title", "severity", "status", "incident_type", "commander", "started_at")
    list_filter = ("status", "severity", "incident_type", "business_units")
    search_fields = ("title", "description")
    date_hierarchy = "started_at"
    inlines = [IncidentRoleInline, AffectedInline, TimelineInline, EvidenceInline]


@admin.register(IncidentRole)
class IncidentRoleAdmin(ReadOnly):
    list_display = ("incident", "person", "role")
    search_fields = ("incident__title", "role")


@admin.register(AffectedSubject)
class AffectedSubjectAdmin(ReadOnly):
    list_display = ("incident", "subject_type", "subject_id")
    list_filter = ("subject_type",)


@admin.register(TimelineEvent)
class TimelineEventAdmin(ReadOnly):
    list_display = ("incident", "at", "kind", "source")
    list_filter = ("kind", "source")
    search_fields = ("incident__title", "text")


@admin.register(CapacityEvidence)
class CapacityEvidenceAdmin(ReadOnly):
    list_display = ("incident", "metric", "at", "value", "unit", "source")
    list_filter = ("metric",)


class SignOffInline(ReadOnlyInline):
    model = SignOff
    fields = ("at", "approver", "approved", "comment")


class FactorInline(ReadOnlyInline):
    model = ContributingFactor
    fields = ("occurred_at", "kind", "summary", "status", "note", "decided_by")


class ActionInline(ReadOnlyInline):
    model = ActionItem
    fields = ("title", "kind", "owner", "due", "status")


@admin.register(PostMortem)
class PostMortemAdmin(ReadOnly):
    list_display = ("incident", "status", "created_at", "published_at")
    list_filter = ("status",)
    search_fields = ("incident__title", "summary")
    inlines = [SignOffInline, FactorInline, ActionInline]


@admin.register(SignOff)
class SignOffAdmin(ReadOnly):
    list_display = ("postmortem", "approver", "approved", "at")
    list_filter = ("approved",)


@admin.register(ContributingFactor)
class ContributingFactorAdmin(ReadOnly):
    list_display = ("postmortem", "kind", "occurred_at", "status", "summary")
    list_filter = ("kind", "status")
    search_fields = ("summary", "note")


@admin.register(ActionItem)
class ActionItemAdmin(ReadOnly):
    list_display = ("title", "kind", "owner", "due", "status")
    list_filter = ("kind", "status")
    search_fields = ("title",)
