# Whoever raises a record states its harm and cause. Step 1 of 3: the columns, empty (0003 fills them, 0004
# makes them required).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("attention", "0001_initial"),
        # Support's state must have let go of the table before attention changes it.
        ("support", "0005_attentionrecord_moved_to_attention"),
    ]

    operations = [
        migrations.AddField(
            model_name="attentionrecord",
            name="harm",
            field=models.IntegerField(
                choices=[(0, "a question, nothing wrong found"), (10, "degraded"), (20, "locked out"),
                         (30, "money taken without access")],
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="attentionrecord",
            name="cause",
            field=models.CharField(blank=True, max_length=80, null=True),
        ),
    ]
