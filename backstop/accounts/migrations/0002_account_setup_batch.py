from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        # Existing accounts take the default: whatever setup they had ran in their own workflow.
        migrations.AddField(
            model_name="account",
            name="setup_batch",
            field=models.CharField(blank=True, db_index=True, default="own-workflow", max_length=64),
        ),
    ]
