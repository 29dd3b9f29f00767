from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "costs"
    verbose_name = "Costs"

    def ready(self) -> None:
        # Approvers read what an estimate would take of the unit's budget; governance asks
        # through its hook rather than importing costs.
        from costs.inference import endpoint_cost_between, version_actual_latest
        from costs.notes import budget_share_note
        from costs.retirement_aws import SageMakerActuator
        from costs.retirement_gcp import VertexActuator
        from costs.tco_services import tco_assessment_panel, tco_decision_panel
        from governance.extensions import register_decision_panel, register_request_note
        from registry.extensions import (
            register_actual_cost_provider,
            register_assessment_panel,
            register_endpoint_actuator,
            register_endpoint_cost_provider,
        )

        register_request_note(budget_share_note)
        # The registry's comparison page shows actual cost per 1k invocations beside the
        # benchmark's prediction; the registry may not import costs, so costs registers it.
        register_actual_cost_provider(version_actual_latest)
        # Retirement prices endpoints from the bill and acts on them through the cloud
        # accounts, both of which live here.
        register_endpoint_cost_provider(endpoint_cost_between)
        register_endpoint_actuator("aws", SageMakerActuator)
        register_endpoint_actuator("gcp", VertexActuator)
        # TCO scenarios attached to a decision or a capacity assessment show on its page.
        register_decision_panel(tco_decision_panel)
        register_assessment_panel(tco_assessment_panel)
