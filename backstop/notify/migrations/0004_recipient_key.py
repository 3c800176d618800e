"""Step 1 of 3: the recipient's key (``lib.email_identity``) on messages and the local mailbox, empty until 0005."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notify", "0003_message_queued_index"),
    ]

    operations = [
        migrations.AddField(
            model_name=model, name="to_key", field=models.CharField(blank=True, max_length=320, null=True),
        )
        for model in ("message", "localmailboxitem")
    ]
