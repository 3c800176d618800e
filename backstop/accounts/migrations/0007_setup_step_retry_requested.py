from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_sign_in_link")]

    operations = [
        migrations.AddField(
            model_name="setupstep",
            name="retry_requested",
            field=models.BooleanField(default=False, db_default=False),
        ),
    ]
