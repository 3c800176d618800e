"""A message's delivery, as a guarded operation: the message is its intent, ``deliver:<key>`` its workflow.

A message that cannot be delivered within the budget is marked failed and raises no attention record of its own: the
support cycle joins failed messages to their customer's case (``join_failed_messages``), and setup reports the
welcome email with the rest of its steps.
"""

from __future__ import annotations

from backstop.notify import services
from backstop.notify.models import DELIVERY_QUEUE
from backstop.runtime.guarded import Attention, GuardedOperation


def _give_up(message_id: int, failed: list[str]) -> Attention | None:
    services.give_up_message(message_id=message_id)
    return None


delivery = GuardedOperation(
    "deliver", queue=DELIVERY_QUEUE,
    steps={"send": lambda message_id, attempt: services.deliver_message(message_id=message_id, attempt=attempt)},
    give_up=_give_up, stranded=services.stranded_messages,
    # The names its workflows were recorded under before the recipe: a delivery left pending then still replays.
    workflow_name="delivery_workflow", step_names={"send": "send_message", "give_up": "mark_message_undeliverable"},
)
delivery_workflow = delivery.workflow
