"""Create the `security` cache's table (brute-force counters), so `migrate` is all a deploy runs."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # Idempotent: createcachetable skips a table that exists.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("predictions", "0009_broker_status")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
