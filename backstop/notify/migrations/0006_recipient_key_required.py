"""Step 3 of 3: every row has its key now (empty where left for a person), so the column is required and indexed."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notify", "0005_fill_to_key"),
    ]

    operations = [
        migrations.AlterField(
            model_name=model, name="to_key", field=models.CharField(blank=True, db_index=True, max_length=320),
        )
        for model in ("message", "localmailboxitem")
    ]
