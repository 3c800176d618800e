"""Step 1 of 3: the buyer's email key on purchase attempts, orders and entitlements, empty until 0005 fills it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_credit"),
    ]

    operations = [
        migrations.AddField(
            model_name=model, name="email_key", field=models.CharField(blank=True, max_length=254, null=True),
        )
        for model in ("purchaseattempt", "order", "entitlement")
    ]
