# The AttentionRecord model moves here from the support app. Its table, rows, constraints and the foreign key
# from support's Signal stay as they are: only Django's state moves (support's 0005 drops it from support).

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

KINDS = [
    ("setup_stalled", "account setup ran out of retries"),
    ("email_undelivered", "an email could not be delivered"),
    ("payment_unmatched", "a processor payment matches no checkout"),
    ("order_without_payment", "an order has no payment at the processor"),
    ("payment_unresolved", "a checkout's payment could not be settled"),
    ("refund_partial", "part of an order was refunded at the processor"),
]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("support", "0004_attention_kind_refund_partial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="AttentionRecord",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("kind", models.CharField(choices=KINDS, max_length=40)),
                        ("account", models.ForeignKey(
                            blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                            related_name="attention", to=settings.AUTH_USER_MODEL)),
                        ("subject", models.CharField(blank=True, default="", max_length=200)),
                        ("summary", models.CharField(max_length=500)),
                        ("detail", models.JSONField(default=dict)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("resolved_at", models.DateTimeField(blank=True, null=True)),
                        ("resolution", models.CharField(blank=True, default="", max_length=200)),
                    ],
                    options={
                        "db_table": "support_attentionrecord",
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("resolved_at__isnull", True)), fields=("account", "kind"),
                                name="one_open_record_per_kind",
                            ),
                            models.UniqueConstraint(
                                condition=models.Q(("resolved_at__isnull", True),
                                                   models.Q(("subject", ""), _negated=True)),
                                fields=("kind", "subject"), name="one_open_record_per_subject",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
