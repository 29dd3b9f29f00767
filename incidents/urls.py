"""Incident pages, one URL list per concern (namespace ``incidents``)."""

from incidents import action_urls, core_urls, factor_urls

app_name = "incidents"

urlpatterns = [*core_urls.urlpatterns, *factor_urls.urlpatterns, *action_urls.urlpatterns]
