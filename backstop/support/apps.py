from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from backstop.attention.models import AttentionRecord
    from backstop.support.models import Signal


class SupportConfig(AppConfig):
    name = "backstop.support"
    label = "support"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.accounts import progress
        from backstop.attention import hooks
        from backstop.runtime import registry
        from backstop.support import checks  # noqa: F401  (registers the search index and inbound checks)
        from backstop.support.commitments import record_setup_promise
        from backstop.support.models import Case, Signal

        # The desk hears of every attention record as it is raised (the support cycle joins any it missed), and it
        # answers accounts' question of whom it tells itself that their workspace is ready.
        hooks.subscribe(join_raised_record)
        hooks.answer_customers_told(Signal.objects.accounts_waiting_on_workspace_in_a_case)
        # ... and whose setup automation holds (a case on an incident): the setup page says what the desk says.
        hooks.answer_waiting_on_an_incident(Case.objects.accounts_waiting_on_an_incident)
        # What the setup page promises (a next-try time, "our support team has it") is a promise on the open case.
        progress.on_setup_promise(record_setup_promise)
        # The search box finds a case by the customer's orders and details, which billing and accounts write.
        from django.db.models.signals import post_save

        from backstop.accounts.models import Account
        from backstop.billing.models import Order, PurchaseAttempt
        from backstop.support import search

        post_save.connect(search.on_buyer_row_saved, sender=Order, dispatch_uid="support-search-order")
        post_save.connect(search.on_buyer_row_saved, sender=PurchaseAttempt, dispatch_uid="support-search-attempt")
        post_save.connect(search.on_account_saved, sender=Account, dispatch_uid="support-search-account")
        # ... and past incidents by their title, updates and post-mortem, which the incidents app writes.
        from backstop.incidents.models import Incident as IncidentRecord
        from backstop.incidents.models import IncidentUpdate, PostMortem

        for model in (IncidentRecord, IncidentUpdate, PostMortem):
            post_save.connect(search.on_incident_text_saved, sender=model,
                              dispatch_uid=f"support-search-incident-{model.__name__}")
        # A case put aside wakes when anything new about the customer joins it, and when its snooze ends.
        from backstop.support.cases import on_signal_joined

        on_signal_joined(_wake_on_signal)
        # Email the customer sends us: anymail's inbound signal, from the webhooks under /inbound/<esp>/.
        from anymail.signals import inbound

        from backstop.support.inbound_webhooks import on_inbound

        inbound.connect(on_inbound, dispatch_uid="support-inbound")
        registry.register_periodic("inbound-thread", _thread_stranded_inbound,
                                   every_seconds=lambda: settings.SUPPORT_CYCLE_SECONDS)
        registry.register_periodic("snooze-wake", _wake_snoozes_that_ended,
                                   every_seconds=lambda: settings.SUPPORT_CYCLE_SECONDS)
        # Last week's figures to staff, once per week (the pass is hourly; the email's key makes it once).
        registry.register_periodic("support-weekly", _send_weekly_summary, every_seconds=lambda: 3600)
        # An incident's post-mortem names the customers who wrote in during it, and what they wrote.
        from backstop.incidents import hooks as incident_hooks
        from backstop.support import incident_facts

        incident_hooks.answer_contacts_between(incident_facts.contacts_between)
        # The desk's card and the incident record of one outage are linked by whichever opens second.
        incident_hooks.on_record_opened(incident_facts.on_record_opened)
        incident_hooks.answer_desk_cards(incident_facts.desk_cards)
        # A contact's answer runs in a workflow after the request (support.workflows); its sweep is the recipe's.
        registry.register_workflows("backstop.support.workflows")
        registry.register_queue("support", concurrency=lambda: settings.SETUP_CONCURRENCY,
                                poll_seconds=lambda: settings.QUEUE_POLL_SECONDS)
        registry.register_periodic("support-cycle", _run_support_cycle,
                                   every_seconds=lambda: settings.SUPPORT_CYCLE_SECONDS)
        # Incidents follow the provider: the cycle runs as soon as a provider recovers (accounts has just retried the
        # customers waiting on it), and, while an incident is live, once per probe interval until it resolves.
        registry.register_recovery_hook("support-incidents", _run_support_cycle_on_recovery)
        registry.register_periodic("incident-watch", _watch_incidents,
                                   every_seconds=lambda: settings.BREAKER_PROBE_SECONDS)


def _run_support_cycle() -> None:
    # Imported when the cycle first runs: start-up must not load the desk's automation into every process.
    from backstop.support.automation import run_support_cycle

    run_support_cycle()


def _wake_on_signal(signal: Signal) -> None:
    from backstop.support.wakeups import wake_on_signal

    wake_on_signal(signal)


def _wake_snoozes_that_ended() -> None:
    from backstop.support.wakeups import wake_snoozes_that_ended

    wake_snoozes_that_ended()


def _thread_stranded_inbound() -> None:
    from django.conf import settings

    from backstop.support.inbound import thread_stranded_inbound

    thread_stranded_inbound(grace_seconds=settings.SWEEP_GRACE_SECONDS)


def _send_weekly_summary() -> None:
    from django.utils import timezone

    from backstop.support.weekly import send_weekly_summary

    send_weekly_summary(now=timezone.now())


def _run_support_cycle_on_recovery(provider: str) -> None:
    _run_support_cycle()


def _watch_incidents() -> None:
    from backstop.support.models import Incident

    if Incident.objects.active().exists():
        _run_support_cycle()


def join_raised_record(record: AttentionRecord) -> None:
    from backstop.support.cases import join_attention_record

    join_attention_record(record=record)
