"""The organisation: business units, people and their roles."""

from __future__ import annotations

from functools import cached_property

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.urls import reverse

from governance.choices import BOARD_ROLES, COST_MANAGER_ROLES, ORGANISATION_WIDE_ROLES, Role


class BusinessUnit(models.Model):
    """A part of the organisation that is charged for the capacity it uses.

    ``code`` is the stable key used in allocation rules, exports and the API
    (``RES``, ``ADS``); the name may change.
    """

    code = models.SlugField(max_length=32, unique=True, allow_unicode=False)
    name = models.CharField(max_length=200)
    cost_centre = models.CharField(max_length=64, blank=True)
    owner = models.ForeignKey(
        "governance.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_business_units",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"

    def save(self, *args, **kwargs) -> None:
        self.code = self.code.upper()
        super().save(*args, **kwargs)


class User(AbstractUser):
    """A person. Roles say what they may do; business units say whose costs they see."""

    business_units = models.ManyToManyField(BusinessUnit, blank=True, related_name="members")

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_user_change", args=[self.pk])

    @cached_property
    def role_set(self) -> frozenset[str]:
        """The person's roles, read once per request."""
        return frozenset(self.role_assignments.values_list("role", flat=True))

    def has_role(self, *roles: str) -> bool:
        return self.is_superuser or bool(self.role_set.intersection(roles))

    @property
    def sees_all_business_units(self) -> bool:
        return self.is_superuser or bool(self.role_set & ORGANISATION_WIDE_ROLES)

    @property
    def manages_costs(self) -> bool:
        return self.is_superuser or bool(self.role_set & COST_MANAGER_ROLES)

    @property
    def is_board_member(self) -> bool:
        return self.is_superuser or bool(self.role_set & BOARD_ROLES)

    @cached_property
    def scoped_business_unit_ids(self) -> frozenset[int]:
        """Business units this person belongs to or owns (their scope without a wide role)."""
        units = BusinessUnit.objects.filter(models.Q(members=self) | models.Q(owner=self))
        return frozenset(units.values_list("pk", flat=True))


class RoleAssignment(models.Model):
    """One role held by one person."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=32, choices=Role.choices)
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "role"], name="unique_role_per_user"),
        ]
        ordering = ["user", "role"]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()}"
