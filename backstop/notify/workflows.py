from __future__ import annotations

from dbos import DBOS
from django.conf import settings

from backstop.notify import services
from backstop.runtime.engine import release_db_connections, yield_cpu_to_requests
from backstop.runtime.retrying import AttemptResult, retry_until_done


@DBOS.step()
def send_message(message_id: int, attempt: int) -> AttemptResult:
    return services.deliver_message(message_id=message_id, attempt=attempt)


@DBOS.step()
def mark_message_undeliverable(message_id: int) -> None:
    services.give_up_message(message_id=message_id)


@DBOS.workflow()
def delivery_workflow(message_id: int) -> bool:
    """Deliver one email or SMS, retrying with backoff; give up after the retry budget."""
    yield_cpu_to_requests()
    try:
        done = retry_until_done(
            {"send": lambda attempt: send_message(message_id, attempt)},
            topic="retry", max_attempts=settings.SETUP_MAX_ATTEMPTS,
        )
        if not done["send"]:
            mark_message_undeliverable(message_id)
        return done["send"]
    finally:
        release_db_connections()
