from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_details_change_waits_for_the_owner")]

    operations = [
        migrations.AddField(
            model_name="verificationcode",
            name="link_hash",
            field=models.CharField(blank=True, db_index=True, default="", max_length=64),
        ),
    ]
