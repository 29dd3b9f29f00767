"""Who may use each route: the table the permission matrix holds every URL to.

Keyed by URL name (``namespace:name``). Each entry is a ``Rule`` (the same for every method
the route answers) or a dict of method -> ``Rule``. The matrix tries each route as:

- ``anonymous`` (nobody signed in): pages send to the login page, the API refuses (401);
- each role of ``governance.choices.Role`` alone, held by a member of unit A;
- for a record of unit A (``unit=True``), the same roles held by a member of unit B.

A rule says which roles are let in (``who``), what they get (``ok``) and what the others get
(``denied``); for unit A's records, which roles reach them from unit B (``across``) and what
the rest of unit B gets (``hidden``, a 404 so nobody learns what exists elsewhere).
``special`` pins what one person gets where the general rule does not say it.

Unsafe API methods are sent with an empty body: a person let in then gets the endpoint's
own answer to an empty request (400 missing fields, 409 wrong state, or 200/201 for
actions that need nothing), never a 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from governance.choices import Role

LOGIN = "302 to the login page"
OUTSIDER = "unit-B:"
ANONYMOUS = "anonymous"

EVERYONE = frozenset(Role.values)
NOBODY: frozenset[str] = frozenset()
FINANCE = Role.FINANCE.value
ADMIN = Role.PLATFORM_ADMIN.value
APPROVER = Role.APPROVER.value
ENGINEER = Role.ML_ENGINEER.value
BOARD = frozenset({Role.BOARD_INFRA.value, Role.BOARD_ML.value, Role.BOARD_PRODUCT.value})
# Finance and platform admins: every unit's costs, imports and rules.
ORG_WIDE = frozenset({FINANCE, ADMIN})
# The board and approvers judge every unit's models, versions and requests.
JUDGES = BOARD | {APPROVER}
# The board, finance and platform admins see every unit's capacity plans and commitments;
# from another unit they may read a plan but not edit it (403), the rest do not see it (404).
PLANNED = BOARD | ORG_WIDE
PLANNED_403 = {OUTSIDER + role: 403 for role in PLANNED}
UNPLANNED_404 = {OUTSIDER + APPROVER: 404, OUTSIDER + ENGINEER: 404}


@dataclass(frozen=True)
class Rule:
    who: frozenset[str] = EVERYONE
    ok: int | str = 200
    denied: int | str = 403
    obj: str | None = None
    unit: bool = False
    across: frozenset[str] = ORG_WIDE
    hidden: int | str = 404
    anonymous: int | str | None = None
    outside: int | str | None = None  # unit B's people without the role; None: `denied`
    special: dict[str, int | str] = field(default_factory=dict)
    data: dict | None = None  # a body that reaches the permission check (else empty)
    organisation_wide: bool = False  # a list that shows every unit's records by design
    skip: str = ""

    def expect(self, who: str, *, api: bool, anonymous_api: int) -> int | str:
        if who in self.special:
            return self.special[who]
        if who == ANONYMOUS:
            if self.anonymous is not None:
                return self.anonymous
            return anonymous_api if api else LOGIN
        if who.startswith(OUTSIDER):
            role = who.removeprefix(OUTSIDER)
            if role not in self.who:
                return self.denied if self.outside is None else self.outside
            return self.ok if role in self.across else self.hidden
        return self.ok if who in self.who else self.denied


# A version's moves: its unit's ML engineers and platform admins (admins from any unit); an
# empty body is the lifecycle's 409. The board's moves are the board's, from any unit.
VERSION_MOVE = Rule(who={ENGINEER, ADMIN}, obj="version", ok=409, unit=True, across={ADMIN})
BOARD_MOVE = Rule(
    who=BOARD, obj="version", ok=409, unit=True, across=BOARD, special={OUTSIDER + ENGINEER: 404}
)
# A retirement case's moves: its unit's people, and platform admins from any unit; finance of
# another unit is refused (403), the rest of it do not see the case (404). Acting on it and
# restoring it are platform admins' alone.
CASE_MOVE = Rule(obj="case", unit=True, across={ADMIN}, special={OUTSIDER + FINANCE: 403})
CASE_ADMIN_MOVE = replace(CASE_MOVE, who={ADMIN}, outside=404)


def rule_for(name: str, method: str = "GET") -> Rule | None:
    """The rule for one method of a route; None when the table does not declare it."""
    entry = TABLE.get(name)
    if isinstance(entry, dict):
        return entry.get(method)
    return entry


def methods_declared(name: str) -> tuple[str, ...]:
    """The methods a page is tried with: GET, or those its entry lists."""
    entry = TABLE.get(name)
    return tuple(entry) if isinstance(entry, dict) else ("GET",)


TABLE: dict[str, Rule | dict[str, Rule]] = {
    "api-docs": Rule(anonymous=LOGIN),
    "api:action-item-close": {
        "POST": Rule(obj="action", ok=400),
    },
    "api:action-item-detail": {
        "GET": Rule(obj="action"),
        "PATCH": Rule(who={ADMIN}, obj="action"),
    },
    "api:action-item-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:allocation-rule-detail": {
        "DELETE": Rule(who=ORG_WIDE, obj="rule", ok=204, unit=True),
        "GET": Rule(who=ORG_WIDE, obj="rule", unit=True),
        "PATCH": Rule(who=ORG_WIDE, obj="rule", unit=True),
        "PUT": Rule(who=ORG_WIDE, obj="rule", ok=400, unit=True),
    },
    "api:allocation-rule-list": {
        "GET": Rule(who=ORG_WIDE),
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "api:api-root": Rule(),
    "api:approval-request-approve": {
        "POST": Rule(
            obj="request", ok=409, unit=True, across=JUDGES | ORG_WIDE, data={"comment": "Proof."}
        ),
    },
    "api:approval-request-detail": {
        "GET": Rule(obj="request", unit=True, across=JUDGES | ORG_WIDE),
        "PATCH": Rule(obj="request", ok=403, unit=True, across=JUDGES | ORG_WIDE),
    },
    "api:approval-request-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:approval-request-reject": {
        "POST": Rule(
            who=frozenset(
                {Role.BOARD_INFRA, Role.BOARD_ML, Role.BOARD_PRODUCT, FINANCE, ENGINEER, ADMIN}
            ),
            obj="request",
            ok=409,
            denied=400,
            unit=True,
            across=frozenset({Role.BOARD_INFRA, Role.BOARD_ML, Role.BOARD_PRODUCT, FINANCE, ADMIN}),
        ),
    },
    "api:approval-request-submit": {
        "POST": Rule(obj="request", ok=403, unit=True, across=JUDGES | ORG_WIDE),
    },
    "api:approval-request-withdraw": {
        "POST": Rule(obj="request", ok=403, unit=True, across=JUDGES | ORG_WIDE),
    },
    "api:assessment-approve": {
        "POST": Rule(obj="assessment", ok=400, unit=True, across=EVERYONE),
    },
    "api:assessment-detail": Rule(obj="assessment", unit=True, across=JUDGES | ORG_WIDE),
    "api:assessment-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:assessment-reject": {
        "POST": Rule(obj="assessment", ok=400, unit=True, across=EVERYONE),
    },
    "api:benchmark-detail": Rule(obj="benchmark", unit=True, across=JUDGES | ORG_WIDE),
    "api:benchmark-list": Rule(),
    "api:benchmark-protocol-approve": {
        "POST": Rule(obj="protocol", ok=400),
    },
    "api:benchmark-protocol-detail": Rule(obj="protocol"),
    "api:benchmark-protocol-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:budget-alerts": Rule(obj="budget", unit=True),
    "api:budget-detail": {
        "DELETE": Rule(who=ORG_WIDE, obj="budget", ok=204, unit=True),
        "GET": Rule(obj="budget", unit=True),
        "PATCH": Rule(who=ORG_WIDE, obj="budget", unit=True),
        "PUT": Rule(who=ORG_WIDE, obj="budget", ok=400, unit=True),
    },
    "api:budget-list": {
        "GET": Rule(),
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "api:business-unit-detail": Rule(obj="unit", unit=True),
    "api:business-unit-list": Rule(),
    "api:capacity-pool-detail": Rule(obj="pool"),
    "api:capacity-pool-list": Rule(),
    "api:chargeback": Rule(ok=400),
    "api:cloud-account-detail": Rule(who={ADMIN}, obj="account"),
    "api:cloud-account-list": Rule(who={ADMIN}),
    "api:contributing-factor-accept": {
        "POST": Rule(obj="factor", ok=400),
    },
    "api:contributing-factor-detail": Rule(obj="factor"),
    "api:contributing-factor-dismiss": {
        "POST": Rule(obj="factor", ok=403),
    },
    "api:contributing-factor-list": Rule(),
    "api:cost-detail": Rule(obj="cost", unit=True),
    "api:cost-list": Rule(),
    "api:cost-summary": Rule(),
    "api:decision-detail": Rule(obj="decision", unit=True, across=JUDGES | ORG_WIDE),
    "api:decision-list": Rule(),
    "api:freeze-detail": Rule(obj="freeze", unit=True, across=JUDGES | ORG_WIDE),
    # Forecasts read as costs do: a unit's people see its forecasts, events and left-out days;
    # the organisation's events everyone. Writes check the service's rule (finance, platform
    # admins, the unit's owner) after the input: an empty body is a 400 for everyone.
    "api:forecast-list": Rule(),
    "api:forecast-detail": Rule(obj="forecast", unit=True),
    "api:anomaly-list": Rule(),
    "api:anomaly-detail": Rule(obj="anomaly", unit=True),
    "api:business-event-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:business-event-detail": {
        "GET": Rule(obj="event", unit=True),
        "PATCH": Rule(who=ORG_WIDE, obj="event", unit=True, outside=404),
        "PUT": Rule(obj="event", ok=400, unit=True),
        "DELETE": Rule(who=ORG_WIDE, obj="event", ok=204, unit=True, outside=404),
    },
    "api:forecast-exclusion-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:forecast-exclusion-detail": {
        "GET": Rule(obj="exclusion", unit=True),
        "DELETE": Rule(who=ORG_WIDE, obj="exclusion", ok=204, unit=True, outside=404),
    },
    "api:freeze-lift": {
        "POST": Rule(
            who={ADMIN},
            obj="freeze",
            unit=True,
            across={ADMIN},
            special={OUTSIDER + ENGINEER: 404},
            data={"reason": "Proof: lifted."},
        ),
    },
    "api:freeze-list": Rule(),
    "api:hardware-profile-detail": Rule(obj="hardware"),
    "api:hardware-profile-list": Rule(),
    "api:import-detail": Rule(who=ORG_WIDE, obj="import"),
    "api:import-list": {
        "GET": Rule(who=ORG_WIDE),
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "api:incident-detail": {
        "GET": Rule(obj="incident"),
        "PATCH": Rule(who={ADMIN}, obj="incident"),
    },
    "api:incident-evidence": {
        "POST": Rule(obj="incident", ok=400),
    },
    "api:incident-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:incident-postmortem": {
        "GET": Rule(obj="incident"),
        "POST": Rule(who={ADMIN}, obj="incident", ok=409),
    },
    "api:incident-roles": {
        "POST": Rule(obj="incident", ok=400),
    },
    "api:incident-timeline": {
        "POST": Rule(obj="incident", ok=400),
    },
    "api:model-detail": Rule(obj="model", unit=True, across=JUDGES | ORG_WIDE),
    "api:model-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:model-version-approve": {
        "POST": BOARD_MOVE,
    },
    "api:model-version-benchmarks": {
        "POST": Rule(obj="version", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "api:model-version-deploy": {
        "POST": VERSION_MOVE,
    },
    "api:model-version-deployment-approvals": {
        "POST": Rule(obj="version", ok=400, unit=True, across=EVERYONE),
    },
    "api:model-version-deprecate": {
        "POST": Rule(who={ENGINEER, ADMIN}, obj="version", unit=True, across={ADMIN}),
    },
    "api:model-version-detail": {
        "GET": Rule(obj="version", unit=True, across=JUDGES | ORG_WIDE),
        "PATCH": VERSION_MOVE,
    },
    "api:model-version-gate": Rule(obj="version", unit=True, across=JUDGES | ORG_WIDE),
    "api:model-version-history": Rule(obj="version", unit=True, across=JUDGES | ORG_WIDE),
    "api:model-version-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:model-version-reject": {
        "POST": BOARD_MOVE,
    },
    "api:model-version-retire": {
        "POST": VERSION_MOVE,
    },
    "api:model-version-revise": {
        "POST": VERSION_MOVE,
    },
    "api:model-version-start_review": {
        "POST": BOARD_MOVE,
    },
    "api:model-version-submit": {
        "POST": VERSION_MOVE,
    },
    "api:model-version-withdraw": {
        "POST": VERSION_MOVE,
    },
    "api:planning-cycle-list": {
        "GET": Rule(),
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "api:planning-cycle-detail": Rule(obj="cycle"),
    "api:planning-cycle-start-review": {
        "POST": Rule(who=BOARD | {ADMIN}, obj="cycle"),
    },
    "api:planning-cycle-approve": {
        "POST": Rule(who=ORG_WIDE, obj="cycle", ok=409),
    },
    "api:planning-cycle-cancel": {
        "POST": Rule(who=ORG_WIDE, obj="cycle", ok=400),  # no reason given
    },
    "api:capacity-plan-list": Rule(),
    "api:capacity-plan-detail": {
        "GET": Rule(obj="plan", unit=True, across=PLANNED),
        "PATCH": Rule(obj="plan", ok=400, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "api:capacity-plan-lines": {
        "GET": Rule(obj="plan", unit=True, across=PLANNED),
        "POST": Rule(obj="plan", ok=400, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "api:capacity-plan-file-plan": {
        "POST": Rule(obj="plan", ok=409, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "api:capacity-plan-reopen": {
        "POST": Rule(obj="plan", unit=True, across=NOBODY, special=PLANNED_403),
    },
    "api:plan-line-list": Rule(),
    "api:plan-line-detail": {
        "GET": Rule(obj="line", unit=True, across=PLANNED),
        "PATCH": Rule(obj="line", ok=409, unit=True, across=NOBODY, special=PLANNED_403),
        "DELETE": Rule(obj="line", ok=409, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "api:plan-line-decide": {
        "POST": Rule(who=NOBODY, obj="line", unit=True, special=UNPLANNED_404),
    },
    "api:commitment-offer-list": Rule(who=PLANNED),
    "api:commitment-offer-detail": Rule(who=PLANNED, obj="offer"),
    "api:commitment-recommendation-list": Rule(who=PLANNED),
    "api:commitment-recommendation-detail": Rule(who=PLANNED, obj="commitment"),
    "api:commitment-recommendation-recompute": {
        "POST": Rule(who=PLANNED),
    },
    "api:commitment-recommendation-purchase-request": {
        "POST": Rule(who={ADMIN}, obj="commitment"),
    },
    "api:commitment-recommendation-dismiss": {
        "POST": Rule(who=PLANNED, obj="commitment"),
    },
    "api:pool-usage-list": {
        "GET": Rule(),
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "api:postmortem-detail": {
        "GET": Rule(obj="postmortem"),
        "PATCH": Rule(obj="postmortem", ok=403),
    },
    "api:postmortem-factors": Rule(obj="postmortem"),
    "api:postmortem-list": Rule(),
    "api:postmortem-markdown": Rule(obj="postmortem"),
    "api:postmortem-refresh-suggestions": {
        "POST": Rule(obj="postmortem", ok=403),
    },
    "api:postmortem-sign": {
        "POST": Rule(obj="postmortem", ok=403),
    },
    "api:postmortem-submit": {
        "POST": Rule(obj="postmortem", ok=403),
    },
    "api:quota-detail": {
        "DELETE": Rule(who=ORG_WIDE, obj="quota", ok=204),
        "GET": Rule(who=ORG_WIDE, obj="quota", denied=404),
        "PATCH": Rule(who=ORG_WIDE, obj="quota"),
        "PUT": Rule(who=ORG_WIDE, obj="quota", ok=400),
    },
    "api:quota-list": {
        "GET": Rule(),
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "api:reconciliation": Rule(who=ORG_WIDE, ok=400),
    "api:retirement-case-act": {
        "POST": CASE_ADMIN_MOVE,
    },
    "api:retirement-case-close": {
        "POST": Rule(obj="case", ok=400, unit=True),
    },
    "api:retirement-case-detail": Rule(obj="case", unit=True),
    "api:retirement-case-keep": {
        "POST": Rule(obj="case", ok=400, unit=True),
    },
    "api:retirement-case-list": Rule(),
    "api:retirement-case-restore": {
        "POST": replace(CASE_ADMIN_MOVE, ok=409),
    },
    "api:retirement-case-retire": {
        "POST": CASE_MOVE,
    },
    "api:retirement-case-steps": Rule(obj="case", unit=True),
    "api:retirement-case-wait": {
        "POST": CASE_MOVE,
    },
    "api:retirement-policy-detail": Rule(obj="retirement-policy"),
    "api:retirement-policy-list": Rule(),
    "api:runbook-detail": Rule(obj="runbook"),
    "api:runbook-list": Rule(),
    "api:slo-detail": Rule(obj="slo"),
    "api:slo-list": Rule(),
    "api:slo-measurement-list": {
        "GET": Rule(),
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "api:slo-openslo": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:statement-close": {
        "POST": Rule(who=ORG_WIDE, obj="month", ok=409),
    },
    "api:statement-detail": Rule(obj="statement", unit=True),
    "api:statement-list": Rule(ok=400),
    "api:statement-publish": {
        "POST": Rule(who=ORG_WIDE, obj="month"),
    },
    "api:statement-unpublish": {
        "POST": Rule(who=ORG_WIDE, obj="month", ok=409),
    },
    "api:sync-run-detail": Rule(who={ADMIN}, obj="sync"),
    "api:sync-run-list": {
        "GET": Rule(who={ADMIN}),
        "POST": Rule(who={ADMIN}, ok=400),
    },
    # TCO: every unit's people for their unit's scenarios; the board, finance and platform
    # admins for every unit's.
    "api:tco-calculate": {
        "POST": Rule(ok=400),
    },
    "api:tco-scenario-detail": {
        "DELETE": Rule(obj="tco", ok=204, unit=True, across=BOARD | ORG_WIDE),
        "GET": Rule(obj="tco", unit=True, across=BOARD | ORG_WIDE),
        "PATCH": Rule(obj="tco", unit=True, across=BOARD | ORG_WIDE),
        "PUT": Rule(obj="tco", ok=400, unit=True, across=BOARD | ORG_WIDE),
    },
    "api:tco-scenario-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:waiver-detail": Rule(obj="waiver", unit=True, across=JUDGES | ORG_WIDE),
    "api:waiver-list": {
        "GET": Rule(),
        "POST": Rule(ok=400),
    },
    "api:waiver-vote": {
        "POST": Rule(obj="waiver", ok=400, unit=True, across=EVERYONE),
    },
    "costs:budget-create": Rule(who=ORG_WIDE),
    "costs:budget-delete": {
        "POST": Rule(
            who=ORG_WIDE,
            obj="budget",
            ok=302,
            unit=True,
            outside=404,
        ),
    },
    "costs:budget-detail": Rule(obj="budget", unit=True),
    "costs:budget-freeze-lift": {
        "POST": Rule(
            who={ADMIN},
            obj="budget",
            ok=302,
            unit=True,
            across={ADMIN},
            outside=404,
            special={OUTSIDER + FINANCE: 403},
            data={"reason": "Proof: lifted."},
        ),
    },
    "costs:budget-list": Rule(),
    "costs:forecast-list": Rule(),
    "costs:forecast-detail": {
        "GET": Rule(obj="forecast", unit=True),
        "POST": Rule(who=ORG_WIDE, obj="forecast", ok=400, unit=True, outside=404),
    },
    "costs:forecast-exclusion-delete": {
        "POST": Rule(who=ORG_WIDE, obj="exclusion", ok=302, unit=True, outside=404),
    },
    "costs:anomaly-list": Rule(),
    "costs:event-list": Rule(),
    "costs:event-create": {
        "GET": Rule(who=ORG_WIDE),
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "costs:event-update": {
        "GET": Rule(who=ORG_WIDE, obj="event", unit=True, outside=404),
        "POST": Rule(who=ORG_WIDE, obj="event", ok=400, unit=True, outside=404),
    },
    "costs:event-delete": {
        "POST": Rule(who=ORG_WIDE, obj="event", ok=302, unit=True, outside=404),
    },
    "costs:budget-update": Rule(
        who=ORG_WIDE,
        obj="budget",
        unit=True,
        outside=404,
    ),
    "costs:chargeback": Rule(),
    "costs:chargeback-export": Rule(),
    "costs:chargeback-resources": Rule(who=ORG_WIDE, denied=404),
    "costs:cost-per-inference": Rule(),
    "costs:explorer": Rule(),
    "costs:import-detail": Rule(who=ORG_WIDE, obj="import"),
    "costs:import-list": Rule(who=ORG_WIDE),
    "costs:import-status": Rule(who=ORG_WIDE, obj="import"),
    "costs:reconciliation": Rule(who=ORG_WIDE),
    "costs:rule-create": Rule(who=ORG_WIDE),
    "costs:rule-delete": {
        "POST": Rule(who=ORG_WIDE, obj="rule", ok=302, unit=True),
    },
    "costs:rule-list": Rule(who=ORG_WIDE),
    "costs:rule-update": Rule(who=ORG_WIDE, obj="rule", unit=True),
    "costs:statement-close": {
        "POST": Rule(who=ORG_WIDE, obj="month", ok=302, data={"confirm": "yes"}),
    },
    "costs:statement-detail": Rule(obj="statement", unit=True),
    "costs:statement-export": Rule(who=ORG_WIDE, obj="month", denied=404),
    "costs:statement-months": Rule(),
    "costs:statement-publish": {
        "POST": Rule(who=ORG_WIDE, obj="month", ok=302),
    },
    "costs:statement-unpublish": {
        "POST": Rule(who=ORG_WIDE, obj="month", ok=302),
    },
    "costs:statements": Rule(obj="month"),
    "costs:sync-run-detail": Rule(who={ADMIN}, obj="sync"),
    "costs:sync-run-list": Rule(who={ADMIN}),
    "costs:unallocated": Rule(who=ORG_WIDE),
    "costs:retention": Rule(who=ORG_WIDE),
    "costs:retention-policy-update": {
        "POST": Rule(who={ADMIN}, obj="retention-policy", ok=302),
    },
    "costs:retention-run": {
        "POST": Rule(who={ADMIN}, ok=302),
    },
    "costs:retention-run-detail": Rule(who=ORG_WIDE, obj="retention-run"),
    "costs:tco": Rule(),
    "costs:tco-attach": {
        "POST": Rule(obj="tco", ok=302, unit=True, across=BOARD | ORG_WIDE),
    },
    "costs:tco-delete": {
        "POST": Rule(obj="tco", ok=302, unit=True, across=BOARD | ORG_WIDE),
    },
    "costs:tco-detach": {
        "POST": Rule(obj="tco", ok=302, unit=True, across=BOARD | ORG_WIDE),
    },
    "costs:tco-detail": Rule(obj="tco", unit=True, across=BOARD | ORG_WIDE),
    "costs:tco-update": Rule(obj="tco", unit=True, across=BOARD | ORG_WIDE),
    # Planning: cycles are read by everyone; a unit's plan by its people (every role) and
    # across units by the board, finance and platform admins (PLANNED). The proof's people
    # are unit A's plan's own, so none decides its lines (a party never decides its own).
    "costs:planning-cycles": Rule(),
    "costs:planning-cycle-open": {
        "POST": Rule(who=ORG_WIDE, ok=400),
    },
    "costs:planning-cycle": Rule(obj="cycle"),
    "costs:planning-cycle-start-review": {
        "POST": Rule(who=BOARD | {ADMIN}, obj="cycle", ok=302),
    },
    "costs:planning-cycle-approve": {
        "POST": Rule(who=ORG_WIDE, obj="cycle", ok=409),
    },
    "costs:planning-cycle-cancel": {
        "POST": Rule(who=ORG_WIDE, obj="cycle", ok=400),  # no reason given
    },
    "costs:capacity-plan": Rule(obj="plan", unit=True, across=PLANNED),
    "costs:capacity-plan-update": {
        "POST": Rule(obj="plan", ok=409, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "costs:capacity-plan-file": {
        "POST": Rule(obj="plan", ok=409, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "costs:capacity-plan-reopen": {
        "POST": Rule(obj="plan", ok=302, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "costs:capacity-plan-line-add": {
        "POST": Rule(obj="plan", ok=400, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "costs:capacity-plan-line-update": {
        "POST": Rule(obj="plan-line", ok=400, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "costs:capacity-plan-line-delete": {
        "POST": Rule(obj="plan-line", ok=409, unit=True, across=NOBODY, special=PLANNED_403),
    },
    "costs:plan-line-decide": {
        "POST": Rule(who=NOBODY, obj="plan-line", unit=True, special=UNPLANNED_404),
    },
    "costs:commitment-list": Rule(who=PLANNED),
    "costs:commitment-recompute": {
        "POST": Rule(who=PLANNED, ok=302),
    },
    "costs:commitment-detail": Rule(who=PLANNED, obj="commitment"),
    "costs:commitment-request": {
        "POST": Rule(who={ADMIN}, obj="commitment", ok=302),
    },
    "costs:commitment-dismiss": {
        "POST": Rule(who=PLANNED, obj="commitment", ok=302),
    },
    "dashboard": Rule(),
    "favicon": Rule(ok=301, anonymous=301),
    "governance:approval-link": Rule(obj="token", ok=400, anonymous=400),
    "governance:decision-detail": Rule(obj="decision", unit=True, across=JUDGES | ORG_WIDE),
    "governance:decision-list": Rule(),
    "governance:freeze-lift": {
        "POST": Rule(
            who={ADMIN},
            obj="freeze",
            ok=302,
            unit=True,
            across={ADMIN},
            special={OUTSIDER + ENGINEER: 404},
            data={"reason": "Proof: lifted."},
        ),
    },
    "governance:freeze-list": Rule(),
    "governance:request-create": Rule(),
    "governance:request-detail": Rule(obj="request", unit=True, across=JUDGES | ORG_WIDE),
    "governance:request-list": Rule(),
    "governance:request-submit": {
        "POST": Rule(obj="request", ok=302, unit=True, across=JUDGES | ORG_WIDE),
    },
    "governance:request-update": Rule(obj="request", ok=403, unit=True, across=JUDGES | ORG_WIDE),
    "governance:request-vote": {
        "POST": Rule(obj="request", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "governance:request-withdraw": {
        "POST": Rule(obj="request", ok=302, unit=True, across=JUDGES | ORG_WIDE),
    },
    "healthz": Rule(anonymous=200),
    "incidents:action-close": {
        "POST": Rule(who={ADMIN}, obj="action", ok=302),
    },
    "incidents:action-create": {
        "POST": Rule(who={ADMIN}, obj="incident", ok=400),
    },
    "incidents:action-update": Rule(who={ADMIN}, obj="action"),
    "incidents:actions": Rule(),
    "incidents:actions-overdue": Rule(),
    "incidents:evidence-add": {
        "POST": Rule(who={ADMIN}, obj="incident", ok=400),
    },
    "incidents:factor-accept": {
        "POST": Rule(obj="factor", ok=302),
    },
    "incidents:factor-dismiss": {
        "POST": Rule(obj="factor", ok=403),
    },
    "incidents:incident-create": Rule(),
    "incidents:incident-detail": Rule(obj="incident"),
    "incidents:incident-edit": Rule(who={ADMIN}, obj="incident"),
    "incidents:incident-forecast-exclude": {
        "POST": Rule(who=ORG_WIDE, obj="incident", ok=302),
    },
    "incidents:incident-list": Rule(),
    "incidents:metrics": Rule(),
    "incidents:postmortem": Rule(obj="incident"),
    "incidents:postmortem-markdown": Rule(obj="incident"),
    "incidents:postmortem-open": {
        "POST": Rule(who={ADMIN}, obj="incident", ok=409),
    },
    "incidents:postmortem-sign": {
        "POST": Rule(obj="incident", ok=400),
    },
    "incidents:postmortem-submit": {
        "POST": Rule(obj="incident", ok=403),
    },
    "incidents:role-add": {
        "POST": Rule(who={ADMIN}, obj="incident", ok=400),
    },
    "incidents:runbook-detail": Rule(obj="runbook"),
    "incidents:runbook-list": Rule(),
    "incidents:timeline-add": {
        "POST": Rule(who={ADMIN}, obj="incident", ok=400),
    },
    "login": Rule(anonymous=200),
    "logout": Rule(ok=405),
    "registry:assessment-create": {
        "POST": Rule(obj="version", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:assessment-decide": {
        "POST": Rule(obj="assessment", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:assessment-detail": Rule(obj="assessment", unit=True, across=JUDGES | ORG_WIDE),
    "registry:benchmark-detail": Rule(obj="benchmark", unit=True, across=JUDGES | ORG_WIDE),
    "registry:benchmark-raw": Rule(obj="benchmark", unit=True, across=JUDGES | ORG_WIDE),
    "registry:benchmark-upload": {
        "POST": Rule(obj="version", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:conflict-create": Rule(),
    "registry:conflict-detail": Rule(obj="conflict", unit=True, across=JUDGES | ORG_WIDE),
    "registry:conflict-resolve": {
        "POST": Rule(obj="conflict", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:conflict-vote": {
        "POST": Rule(obj="conflict", ok=302, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:deployment-approve": {
        "POST": Rule(obj="version", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:deployment-approvers-ask": {
        "POST": Rule(obj="version", ok=302, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:model-compare": Rule(obj="model", unit=True, across=JUDGES | ORG_WIDE),
    "registry:model-create": Rule(who={ENGINEER, ADMIN}),
    "registry:model-detail": Rule(obj="model", unit=True, across=JUDGES | ORG_WIDE),
    "registry:model-list": Rule(),
    "registry:protocol-approve": {
        "POST": Rule(obj="protocol", ok=400),
    },
    "registry:protocol-create": Rule(who=BOARD | {ADMIN}),
    "registry:protocol-detail": Rule(obj="protocol"),
    "registry:protocol-list": Rule(),
    "registry:retirement-case": Rule(obj="case", unit=True),
    "registry:retirement-case-act": {
        "POST": replace(CASE_ADMIN_MOVE, ok=302),
    },
    "registry:retirement-case-close": {
        "POST": Rule(obj="case", ok=400, unit=True),
    },
    "registry:retirement-case-keep": {
        "POST": Rule(obj="case", ok=400, unit=True),
    },
    "registry:retirement-case-restore": {
        "POST": replace(CASE_ADMIN_MOVE, ok=409),
    },
    "registry:retirement-case-retire": {
        "POST": replace(CASE_MOVE, ok=302),
    },
    "registry:retirement-case-wait": {
        "POST": replace(CASE_MOVE, ok=302),
    },
    "registry:retirement-cases": Rule(),
    "registry:retirement-consolidate": {
        "POST": Rule(ok=302),
    },
    "registry:retirement-endpoints": Rule(),
    "registry:retirement-link": Rule(obj="token", ok=400, anonymous=400),
    "registry:retirement-savings": Rule(),
    "registry:retirement-sprawl": Rule(),
    "registry:review-queue": Rule(who=BOARD),
    "registry:version-create": Rule(who={ENGINEER, ADMIN}, obj="model", unit=True, across={ADMIN}),
    "registry:version-detail": Rule(obj="version", unit=True, across=JUDGES | ORG_WIDE),
    "registry:version-transition": {
        "POST": Rule(obj="version", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:waiver-create": {
        "POST": Rule(obj="version", ok=400, unit=True, across=JUDGES | ORG_WIDE),
    },
    "registry:waiver-vote": {
        "POST": Rule(obj="waiver", ok=302, unit=True, across=JUDGES | ORG_WIDE),
    },
    "schema": Rule(),
    # --- issue 10: tokens, the audit log, health and metrics, single sign-on ----------------
    # A token is its owner's (unit A's ML engineer here): others never learn it exists; a
    # platform admin revokes anybody's from the page, not through the API.
    "api:token-list": Rule(),
    "api:token-detail": Rule(who={ENGINEER}, obj="api-token", denied=404, unit=True, across=NOBODY),
    "api:token-revoke": Rule(who={ENGINEER}, obj="api-token", denied=404, unit=True, across=NOBODY),
    "governance:token-list": Rule(),
    "governance:token-revoke": {
        "POST": Rule(
            who={ENGINEER, ADMIN},
            obj="api-token",
            ok=302,
            denied=404,
            unit=True,
            across={ADMIN},
        )
    },
    # The audit log: platform admins, finance and the board, whatever their unit.
    "api:audit-entry-list": Rule(who=BOARD | ORG_WIDE),
    "api:audit-entry-detail": Rule(who=BOARD | ORG_WIDE, obj="audit"),
    "governance:audit-list": Rule(who=BOARD | ORG_WIDE),
    "governance:audit-export": Rule(who=BOARD | ORG_WIDE),
    # Prometheus metrics: platform admins only (a scraper signs in as one).
    "metrics": Rule(who={ADMIN}, anonymous=403),
    "readyz": Rule(anonymous=200),
    # Single sign-on is off unless OIDC is configured: the routes answer 404 to everybody.
    "oidc_authentication_init": Rule(ok=404, anonymous=404),
    "oidc_authentication_callback": Rule(ok=404, anonymous=404),
}
