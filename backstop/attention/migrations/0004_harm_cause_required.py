# Step 3 of 3: every record has its harm and cause (0003 filled the old ones); new ones must state them.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("attention", "0003_fill_harm_cause"),
    ]

    operations = [
        migrations.AlterField(
            model_name="attentionrecord",
            name="harm",
            field=models.IntegerField(
                choices=[(0, "a question, nothing wrong found"), (10, "degraded"), (20, "locked out"),
                         (30, "money taken without access")],
            ),
        ),
        migrations.AlterField(
            model_name="attentionrecord",
            name="cause",
            field=models.CharField(blank=True, max_length=80),
        ),
    ]
