from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "costs"
    verbose_name = "Costs"

    def ready(self) -> None:
        # Approvers read what an estimate would take of the unit's budget; governance asks
        # through its hook rather than importing costs.
        from costs.notes import budget_share_note
        from governance.extensions import register_request_note

        register_request_note(budget_share_note)
