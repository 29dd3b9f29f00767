"""Regression tests for what an attack on the statements found (each names the finding)."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from costs import chargeback
from costs.models import AllocationPolicy, SharedPool, SharedPoolShare, SlaPenaltyPolicy
from costs.penalties import BandError, bands_parse
from costs.selectors import month_parse
from governance.models import ServiceLevelObjective
from governance.tokens import api_token_create
from tests.costs.conftest import OCT, import_file
from tests.factories import UserFactory, focus_line

NOV = dt.date(2026, 11, 1)


def api_as(user) -> APIClient:
    api = APIClient()
    _, key = api_token_create(user=user, name="tests", scope="write", days=730, by=user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


def test_a_closed_month_that_cannot_be_computed_stops_next_months_adjustments(abc, tmp_path):
    """Finding 1: it used to reverse the closed month's charges silently."""
    AllocationPolicy.objects.create(name="FY27", first_month=NOV)
    chargeback.period_publish(month=OCT, by=abc["finance"])
    chargeback.period_close(month=OCT, by=abc["finance"])
    import_file(
        tmp_path / "nov.csv",
        [focus_line(cost="5", tags={"team": "a"}, period="2026-11-01", day="2026-11-02")],
    )
    pool = SharedPool.objects.get(name="Platform overhead")
    pool.method = "fixed"
    pool.save()
    SharedPoolShare.objects.create(pool=pool, business_unit=abc["A"], percent=D("90"))
    november = chargeback.statements_compute(NOV)
    assert "The closed month 2026-10 can no longer be computed" in november.error
    assert november.currencies == {}
    with pytest.raises(Exception, match="cannot be published"):
        chargeback.period_publish(month=NOV, by=abc["finance"])


@pytest.mark.parametrize("bad", ["NaN", "sNaN", "-Infinity"])
def test_bands_refuse_nan_and_infinity(bad):
    """Finding 3: NaN raised InvalidOperation (a 500)."""
    with pytest.raises(BandError):
        bands_parse([{"below": bad, "credit_percent": "10"}])


def test_nan_bands_in_the_database_are_a_warning_not_a_500(abc, signed_in_client):
    slo = ServiceLevelObjective.objects.create(
        name="x", service="x", indicator="availability", target=D("99"), provider=abc["PLAT"]
    )
    SlaPenaltyPolicy.objects.create(slo=slo, bands=[{"below": "NaN", "credit_percent": "10"}])
    from governance.models import SloMeasurement

    SloMeasurement.objects.create(slo=slo, day=OCT, value=D("50"))
    result = chargeback.statements_compute(OCT)
    assert any("finite numbers" in w for w in result.warnings)
    assert signed_in_client(abc["finance"]).get("/costs/statements/2026-10/").status_code == 200


@pytest.mark.parametrize(
    "raw", ["0001-01", "9999-12", "0000-01", "2026-1", "2026-13", "\uff12\uff10\uff12\uff16-10"]
)
def test_months_outside_reason_are_refused(raw):
    """Finding 4 and 15: year 1 / 9999 overflowed; '2026-1' was accepted."""
    with pytest.raises(ValueError, match="month"):
        month_parse(raw)


def test_extreme_months_are_404_and_400_not_500(abc, signed_in_client):
    client = signed_in_client(abc["finance"])
    assert client.get("/costs/statements/0001-01/").status_code == 404
    api = api_as(abc["finance"])
    assert api.get("/api/v1/statements/?month=9999-12").status_code == 400
    assert api.get("/api/v1/slo-measurements/?month=0000-01").status_code == 400


def test_mail_subject_is_cleaned_and_a_failure_does_not_remail(abc, mailoutbox, monkeypatch):
    """Finding 5: a CR/LF in a unit name aborted the batch; a retry mailed units twice."""
    abc["B"].name = "Unit B\r\nBcc: x@example.com"
    abc["B"].save()
    period = chargeback.period_publish(month=OCT, by=abc["finance"])
    sent = []
    from django.core.mail import EmailMultiAlternatives

    original = EmailMultiAlternatives.send

    def flaky(self, *args, **kwargs):
        if len(sent) == 2:
            sent.append("boom")
            raise OSError("SMTP down")
        sent.append(self.to[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "send", flaky)
    with pytest.raises(OSError, match="SMTP down"):
        chargeback.statements_notify(period_id=period.pk)
    monkeypatch.setattr(EmailMultiAlternatives, "send", original)
    chargeback.statements_notify(period_id=period.pk)
    recipients = [m.to[0] for m in mailoutbox]
    assert sorted(recipients) == sorted(set(recipients))  # nobody twice
    assert len(recipients) == 4
    assert all("\n" not in m.subject and "\r" not in m.subject for m in mailoutbox)


def test_export_errors_keep_their_message_and_accept_headers_work(abc):
    """Finding 6: errors under ?format=csv had empty bodies; Accept: text/csv got b''."""
    api = api_as(abc["finance"])
    bad = api.get("/api/v1/statements/?month=Oct&format=csv")
    assert bad.status_code == 400
    assert "YYYY-MM" in bad.content.decode()
    csv = api.get("/api/v1/statements/?month=2026-10", HTTP_ACCEPT="text/csv")
    assert csv.status_code == 200
    assert b"business_unit" in csv.content


def test_members_do_not_see_other_units_warnings(abc):
    """Finding 7."""
    chargeback.period_publish(month=OCT, by=abc["finance"])
    period = chargeback.period_of(OCT)
    period.warnings = ["SLO secret-a was missed but names no provider team; no penalty."]
    period.save()
    member = UserFactory(username="bm", units=[abc["B"]])
    assert chargeback.statements_get(user=member, month=OCT).warnings == []
    body = api_as(member).get("/api/v1/statements/?month=2026-10").json()
    assert body["warnings"] == []


def test_a_closed_statement_keeps_the_units_name_after_a_rename(abc, signed_in_client):
    """Finding 10: a rename changed a closed month and broke mailed links."""
    chargeback.period_publish(month=OCT, by=abc["finance"])
    chargeback.period_close(month=OCT, by=abc["finance"])
    abc["A"].code, abc["A"].name = "ZED", "Renamed"
    abc["A"].save()
    closed = chargeback.statements_get(user=abc["finance"], month=OCT)
    assert closed.statement("A") is not None
    response = signed_in_client(abc["finance"]).get("/costs/statements/2026-10/A/")
    assert response.status_code == 200
    assert "Unit A" in response.content.decode()


def test_a_fixed_share_to_a_pool_holder_is_refused(abc):
    """Finding 11."""
    pool = SharedPool.objects.get(name="Platform overhead")
    pool.method = "fixed"
    pool.save()
    SharedPoolShare.objects.create(pool=pool, business_unit=abc["PLAT"], percent=D("50"))
    SharedPoolShare.objects.create(pool=pool, business_unit=abc["A"], percent=D("50"))
    assert "holds a shared pool" in chargeback.statements_compute(OCT).error


def test_the_command_checks_its_arguments_before_acting(abc, tmp_path):
    """Finding 12."""
    with pytest.raises(CommandError, match="--output"):
        call_command("chargeback", "--month", "2026-10", "--action", "publish", "--format", "xlsx")
    with pytest.raises(CommandError, match="a folder that exists"):
        call_command(
            "chargeback", "--month", "2026-10", "--action", "publish", "--output", str(tmp_path)
        )
    assert chargeback.period_of(OCT) is None


@pytest.fixture
def signed_in_client(client):
    from tests.factories import PASSWORD

    def sign_in(user):
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in
