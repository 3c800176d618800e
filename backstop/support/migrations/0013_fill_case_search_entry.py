"""Every case recorded before the search box gets its search entry (later ones are written as they change)."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def fill_case_search_entry(apps: Any, schema_editor: Any) -> None:
    from backstop.support.search import SearchModels, entry_texts

    models = SearchModels(
        case=apps.get_model("support", "Case"), signal=apps.get_model("support", "Signal"),
        contact=apps.get_model("support", "Contact"), note=apps.get_model("support", "CaseNote"),
        account=apps.get_model("accounts", "Account"), order=apps.get_model("billing", "Order"),
        attempt=apps.get_model("billing", "PurchaseAttempt"))
    Entry = apps.get_model("support", "CaseSearchEntry")
    for case in models.case.objects.filter(search_entry__isnull=True).order_by("pk").iterator():
        identity, body = entry_texts(case, models)
        Entry.objects.create(case_id=case.pk, identity=identity, body=body)


class Migration(migrations.Migration):

    dependencies = [
        ("support", "0012_case_search_entry"),
        ("billing", "0012_purchaseattempt_buyer_saw"),
        ("accounts", "0007_setup_step_retry_requested"),
    ]

    operations = [
        migrations.RunPython(fill_case_search_entry, migrations.RunPython.noop),
    ]
