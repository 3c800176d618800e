# The plan on sale from day one: one year of Backstop for $249.

from django.db import migrations


def add_annual_plan(apps, schema_editor):
    Product = apps.get_model("billing", "Product")
    Product.objects.get_or_create(
        code="annual",
        defaults={"name": "Backstop annual plan", "amount_cents": 24900, "currency": "usd", "period_days": 365},
    )


def remove_annual_plan(apps, schema_editor):
    apps.get_model("billing", "Product").objects.filter(code="annual", attempts__isnull=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(add_annual_plan, remove_annual_plan),
    ]
