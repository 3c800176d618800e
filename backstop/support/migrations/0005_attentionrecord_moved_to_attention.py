# AttentionRecord now belongs to the attention app (its 0001 takes over the same table): support drops the model
# from its state and its Signal points at attention's model. Nothing changes in the database.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("support", "0004_attention_kind_refund_partial"),
        ("attention", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name="signal",
                    name="attention",
                    field=models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="signals",
                        to="attention.attentionrecord",
                    ),
                ),
                migrations.DeleteModel(name="AttentionRecord"),
            ],
        ),
    ]
