"""Step 3 of 3: every row has its key now (empty where left for a person), so the column is required and indexed."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_fill_email_key"),
    ]

    operations = [
        migrations.AlterField(
            model_name=model, name="email_key", field=models.CharField(blank=True, db_index=True, max_length=254),
        )
        for model in ("purchaseattempt", "order", "entitlement")
    ]
