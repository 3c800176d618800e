"""The desk's new answers to a customer who names a purchase: being checked, complete, refunded, not charged."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('support', '0006_fill_customer_key'),
    ]

    operations = [
        migrations.AlterField(
            model_name='contact',
            name='finding',
            field=models.CharField(blank=True, choices=[('no_account', 'no account for this address'), ('all_well', 'nothing wrong found'), ('setup_fixed', 'setup was stuck; retried and finished'), ('setup_retrying', 'setup was stuck; retried, still running'), ('setup_waiting', 'setup waiting for a failing provider'), ('setup_needs_human', 'setup failing; needs a person'), ('email_undelivered', 'our emails are not reaching them; code sent by SMS'), ('payment_fulfilled', 'paid without access; access given now'), ('payment_needs_human', 'paid without access; needs a person'), ('payment_being_checked', 'checkout not finished; being settled with the processor'), ('payment_complete', 'their purchase is paid and active'), ('payment_refunded', 'their purchase was refunded'), ('payment_not_charged', 'their checkout was not charged'), ('disabled', 'account disabled')], default='', max_length=30),
        ),
    ]
