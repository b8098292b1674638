"""Move DRF's plaintext API tokens into knox's hashed table, then erase the plaintext.

Clients keep sending the same `Authorization: Token <key>`: knox finds a token by its
first 15 characters and compares the SHA-512 of the whole key, which works for DRF's
40-character hex keys as for its own. `rest_framework.authtoken` is no longer installed,
so its table is read with SQL when it exists (a site that had it) and left empty.
"""

import hashlib

from django.db import migrations

LEGACY_TABLE = "authtoken_token"
TOKEN_KEY_LENGTH = 15  # knox.settings.CONSTANTS.TOKEN_KEY_LENGTH


def hash_legacy_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    table = schema_editor.quote_name(LEGACY_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {table}")  # noqa: S608
        for key, user_id, created in cursor.fetchall():
            token = AuthToken(
                digest=hashlib.sha512(key.encode()).hexdigest(),
                token_key=key[:TOKEN_KEY_LENGTH],
                user_id=user_id,
                expiry=None,
            )
            token.save()
            # auto_now_add set today's date; keep when the key was really issued.
            AuthToken.objects.filter(pk=token.pk).update(created=created)
        cursor.execute(f"DELETE FROM {table}")  # noqa: S608


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0011_audit_event_and_export_permission"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(hash_legacy_tokens, migrations.RunPython.noop)]
