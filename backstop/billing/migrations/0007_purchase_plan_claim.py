"""Step 1 of 2: the plan claim (one purchase per intent) and the plan period an extension renews; 0008 fills the
claims of purchases already running or under way. Nullable, so no third step: a released claim is NULL for good."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0006_buyer_email_key_required"),
    ]

    operations = [
        migrations.AddField(
            model_name="purchaseattempt",
            name="plan_claim",
            field=models.CharField(blank=True, default=None, max_length=320, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="purchaseattempt",
            name="renews",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="renewals", to="billing.entitlement"),
        ),
    ]
