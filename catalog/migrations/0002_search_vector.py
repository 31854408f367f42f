"""Full-text search on PostgreSQL: a generated, weighted tsvector column with a GIN index.

Name weighs most (A), then label and tagline (B), then the docs (C). The column is maintained
by PostgreSQL itself, so no code path can forget to update it. SQLite has no tsvector; there
the catalog's search falls back to substring matching (catalog.selectors._text_search).
"""
from django.db import migrations

FORWARD = """
ALTER TABLE catalog_algorithm ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', coalesce(name, '') || ' ' ||
                          regexp_replace(coalesce(name, ''), '_', ' ', 'g')), 'A') ||
    setweight(to_tsvector('english', coalesce(label, '') || ' ' || coalesce(tagline, '')), 'B') ||
    setweight(to_tsvector('english', coalesce(summary, '')), 'C')
) STORED;
CREATE INDEX catalog_algorithm_search_gin ON catalog_algorithm USING gin (search_vector);
"""
BACKWARD = """
DROP INDEX IF EXISTS catalog_algorithm_search_gin;
ALTER TABLE catalog_algorithm DROP COLUMN IF EXISTS search_vector;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
