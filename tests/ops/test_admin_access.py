"""The admin is for staff who hold the platform admin role, and for superusers; staff status
alone or the role alone is not enough."""

from __future__ import annotations

import pytest
from django.test import Client

from governance.choices import Role
from governance.models import User
from tests.factories import PASSWORD, UserFactory

# The index, and pages whose models are for platform admins (other models also need Django's
# model permissions, which this check adds to, never replaces).
PAGES = ("/admin/", "/admin/governance/deploymentfreeze/", "/admin/registry/hardwareprofile/")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_admin_opens_for_staff_platform_admins_and_superusers(db, path):
    admin = UserFactory(username="pat", is_staff=True, roles=[Role.PLATFORM_ADMIN])
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    assert signed_in(admin).get(path).status_code == 200
    assert signed_in(root).get(path).status_code == 200


@pytest.mark.parametrize(
    ("is_staff", "roles"),
    [
        (True, [Role.FINANCE]),  # staff, but not a platform admin
        (True, []),
        (False, [Role.PLATFORM_ADMIN]),  # the role, but not staff
    ],
)
@pytest.mark.parametrize("path", PAGES)
def test_admin_refuses_everyone_else_with_403_saying_why(db, path, is_staff, roles):
    user = UserFactory(username="sam", is_staff=is_staff, roles=roles)
    response = signed_in(user).get(path)
    assert response.status_code == 403
    page = response.content.decode()
    assert "The admin is for platform admins with staff status" in page


def test_admin_sends_a_signed_out_visitor_to_a_sign_in_page(db):
    assert Client().get("/admin/").url == "/admin/login/?next=/admin/"
    freezes = "/admin/governance/deploymentfreeze/"
    assert Client().get(freezes).url == f"/login/?next={freezes}"


def test_admin_sign_in_does_not_let_staff_without_the_role_in(db):
    UserFactory(username="sam", is_staff=True, roles=[Role.FINANCE])
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "sam", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/governance/deploymentfreeze/").status_code == 403
