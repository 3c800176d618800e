from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_setup_step_retry_requested")]

    operations = [
        migrations.AddField(
            model_name="verificationcode",
            name="browser_hash",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
    ]
