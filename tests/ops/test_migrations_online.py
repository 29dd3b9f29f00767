"""Indexes on the cost rows build without locking out imports on PostgreSQL."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db.migrations.loader import MigrationLoader


class Editor:
    """Records how the operation asks the schema editor for the index."""

    def __init__(self, vendor: str) -> None:
        self.connection = SimpleNamespace(vendor=vendor, alias="default", in_atomic_block=False)
        self.built: list[tuple[str, bool]] = []

    def add_index(self, model, index, concurrently: bool = False) -> None:
        self.built.append((index.name, concurrently))


@pytest.mark.parametrize(("vendor", "concurrently"), [("postgresql", True), ("sqlite", False)])
def test_the_day_index_of_the_cost_rows_builds_concurrently_where_it_can(vendor, concurrently):
    loader = MigrationLoader(None, ignore_no_migrations=True)
    migration = loader.get_migration("costs", "0009_costrow_day_index")
    assert migration.atomic is False  # CONCURRENTLY cannot run in a transaction
    [operation] = migration.operations
    before = loader.project_state(("costs", "0008_costrow_month_day_index"))
    after = loader.project_state(("costs", "0009_costrow_day_index"))
    editor = Editor(vendor)
    operation.database_forwards("costs", editor, before, after)
    assert editor.built == [("costrow_day", concurrently)]
