"""Step 1 of 2: the table of what the processor last said about each payment (``billing.ProcessorStatus``)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0008_fill_plan_claim'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProcessorStatus',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('payment_id', models.CharField(blank=True, default='', max_length=100)),
                ('status', models.CharField(max_length=40)),
                ('amount_cents', models.PositiveIntegerField(default=0)),
                ('currency', models.CharField(blank=True, default='', max_length=3)),
                ('amount_refunded_cents', models.PositiveIntegerField(default=0)),
                ('as_of', models.DateTimeField()),
                ('learnt_from', models.CharField(choices=[('charge', "the charge's answer"), ('webhook', "the processor's webhook"), ('reconciliation', 'reconciliation'), ('lookup', 'a lookup at the processor'), ('books', 'our books, before statuses were recorded')], max_length=20)),
                ('recorded_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('attempt', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='processor_statuses', to='billing.purchaseattempt')),
            ],
            options={
                'verbose_name_plural': 'processor statuses',
                'constraints': [models.UniqueConstraint(condition=models.Q(('payment_id', ''), _negated=True), fields=('payment_id',), name='one_processor_status_per_payment'), models.UniqueConstraint(condition=models.Q(('payment_id', '')), fields=('attempt',), name='one_no_payment_status_per_attempt')],
            },
        ),
    ]
