from governance.choices import Role
from governance.services import person_upsert
from tests.factories import BusinessUnitFactory


def test_person_upsert_is_idempotent_and_keeps_a_changed_password(db):
    research = BusinessUnitFactory(code="RES")
    first = person_upsert(
        username="rhea",
        email="r@example.com",
        password="one-two-three-4",
        roles=[Role.ML_ENGINEER],
        business_units=[research],
    )
    first.set_password("changed-by-rhea-5")
    first.save()
    again = person_upsert(
        username="rhea",
        email="r@example.com",
        password="one-two-three-4",
        roles=[Role.ML_ENGINEER, Role.APPROVER],
        business_units=[research],
    )
    assert again.pk == first.pk
    assert again.check_password("changed-by-rhea-5")
    assert again.role_set == {Role.ML_ENGINEER, Role.APPROVER}
    assert again.scoped_business_unit_ids == {research.pk}
