from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        # A decision's page lists the incidents it contributed to; governance asks through its
        # hook rather than importing incidents.
        from governance.extensions import register_decision_panel
        from incidents.suggestions import decision_incidents_panel

        register_decision_panel(decision_incidents_panel)

        # Open prevent action items show on the deployment gate of the versions they concern
        # (and hold them back where the registration requirement says so).
        from incidents.actions import gate_prevent_items
        from registry.gate import register_warning_provider

        register_warning_provider(gate_prevent_items)
