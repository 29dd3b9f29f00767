from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "costs"
    verbose_name = "Costs"

    def ready(self) -> None:
        # Approvers read what an estimate would take of the unit's budget; governance asks
        # through its hook rather than importing costs.
        from costs.inference import version_actual_latest
        from costs.notes import budget_share_note
        from governance.extensions import register_request_note
        from registry.extensions import register_actual_cost_provider

        register_request_note(budget_share_note)
        # The registry's comparison page shows actual cost per 1k invocations beside the
        # benchmark's prediction; the registry may not import costs, so costs registers it.
        register_actual_cost_provider(version_actual_latest)
