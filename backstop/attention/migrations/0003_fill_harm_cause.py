# Step 2 of 3: existing records get the harm and cause the support desk gave their signals until now
# (support.triage.harm_of and cause_of_attention, removed in this change).

from typing import Any

from django.db import migrations

MONEY, LOCKED_OUT, DEGRADED = 30, 20, 10
HARM_OF_KIND = {"payment_unmatched": MONEY, "payment_unresolved": MONEY, "setup_stalled": LOCKED_OUT}
CAUSE_OF_KIND = {"setup_stalled": "provider:workspace", "email_undelivered": "provider:email"}


def fill_harm(apps: Any, schema_editor: Any) -> None:
    records = apps.get_model("attention", "AttentionRecord").objects.filter(harm__isnull=True)
    for kind, harm in HARM_OF_KIND.items():
        records.filter(kind=kind).update(harm=harm)
    records.update(harm=DEGRADED)


def fill_cause(apps: Any, schema_editor: Any) -> None:
    records = apps.get_model("attention", "AttentionRecord").objects.filter(cause__isnull=True)
    for kind, cause in CAUSE_OF_KIND.items():
        records.filter(kind=kind).update(cause=cause)
    # Other kinds named their provider in the detail, when one was to blame.
    for pk, detail in list(records.filter(detail__has_key="provider").values_list("pk", "detail")):
        if detail["provider"]:
            records.filter(pk=pk).update(cause=f"provider:{detail['provider']}")
    records.update(cause="")


class Migration(migrations.Migration):

    dependencies = [
        ("attention", "0002_harm_cause_schema"),
    ]

    operations = [
        migrations.RunPython(fill_harm, migrations.RunPython.noop),
        migrations.RunPython(fill_cause, migrations.RunPython.noop),
    ]
