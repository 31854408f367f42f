"""Usage rows: closing a call rewrites its row in place (no indexed column changes).

The status index (and its LIKE twin) and the charge's index go; a partial index on the rows
not yet settled or released replaces the status index for the settler and the reconciler.
On PostgreSQL the table keeps a fifth of each page free, so that the closing rewrite fits
on the row's own page (a HOT update: no new entry in any of the table's indexes).
"""
import django.db.models.deletion
from django.db import migrations, models


def leave_room_on_each_page(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE billing_usagerecord SET (fillfactor = 80)")


def fill_pages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE billing_usagerecord RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0003_usage_without_db_foreign_keys'),
        ('catalog', '0004_secrets'),
        ('execution', '0004_invocation_lean_writes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='usagerecord',
            name='status',
            field=models.CharField(choices=[('held', 'Held (the call is running)'), ('pending', 'Finished; being settled'), ('settled', 'Settled'), ('released', 'Released (the call failed; not billed)'), ('refunded', "Refunded (the platform's fault)")], default='held', max_length=10),
        ),
        migrations.AlterField(
            model_name='usagerecord',
            name='transaction',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.ledgertransaction'),
        ),
        migrations.AddIndex(
            model_name='usagerecord',
            index=models.Index(condition=models.Q(('settled_at__isnull', True)), fields=['id'], name='billing_usage_unsettled'),
        ),
        migrations.RunPython(leave_room_on_each_page, fill_pages),
    ]
