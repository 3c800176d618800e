# Attention records about payments: new kinds, and records that no account owns (a payment from an
# unknown buyer), kept unique per open subject.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("support", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="attentionrecord",
            name="kind",
            field=models.CharField(
                choices=[
                    ("setup_stalled", "account setup ran out of retries"),
                    ("email_undelivered", "an email could not be delivered"),
                    ("payment_unmatched", "a processor payment matches no checkout"),
                    ("order_without_payment", "an order has no payment at the processor"),
                    ("payment_unresolved", "a checkout's payment could not be settled"),
                ],
                max_length=40,
            ),
        ),
        migrations.AlterField(
            model_name="attentionrecord",
            name="account",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="attention",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="attentionrecord",
            name="subject",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.AddConstraint(
            model_name="attentionrecord",
            constraint=models.UniqueConstraint(
                condition=models.Q(("resolved_at__isnull", True), models.Q(("subject", ""), _negated=True)),
                fields=("kind", "subject"),
                name="one_open_record_per_subject",
            ),
        ),
    ]
