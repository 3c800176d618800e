from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("demo", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="faultsetting",
            name="mode",
            field=models.CharField(
                choices=[
                    ("ok", "working"),
                    ("error", "answers with an error"),
                    ("timeout", "hangs until the adapter's timeout"),
                    ("slow", "answers slowly"),
                    ("crash_after_charge", "the server process dies right after the card is charged"),
                ],
                default="ok",
                max_length=20,
            ),
        ),
    ]
