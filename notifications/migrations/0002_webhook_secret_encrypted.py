"""Webhook signing secrets encrypted at rest: the `secret` column becomes `secret_encrypted`, and every secret
stored in clear is encrypted with the current `NOTIFICATIONS_SECRET_KEY` (reversed: decrypted again)."""

from django.conf import settings
from django.db import migrations, models

from notifications import secret_box


def encrypt_secrets(apps, schema_editor):
    Webhook = apps.get_model("notifications", "Webhook")
    for pk, value in Webhook.objects.values_list("pk", "secret_encrypted").iterator():
        if not secret_box.is_sealed(value):  # a rerun after a partial run leaves sealed ones as they are
            Webhook.objects.filter(pk=pk).update(
                secret_encrypted=secret_box.seal(value, key=settings.NOTIFICATIONS_SECRET_KEY))


def decrypt_secrets(apps, schema_editor):
    Webhook = apps.get_model("notifications", "Webhook")
    for pk, value in Webhook.objects.values_list("pk", "secret_encrypted").iterator():
        if secret_box.is_sealed(value):
            Webhook.objects.filter(pk=pk).update(
                secret_encrypted=secret_box.unseal(value, key=settings.NOTIFICATIONS_SECRET_KEY))


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.RenameField(model_name="webhook", old_name="secret", new_name="secret_encrypted"),
        migrations.AlterField(
            model_name="webhook",
            name="secret_encrypted",
            field=models.CharField(help_text="The signing secret, encrypted with NOTIFICATIONS_SECRET_KEY "
                                             "(notifications.secret_box).", max_length=255),
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets),
    ]
