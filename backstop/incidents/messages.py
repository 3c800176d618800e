"""Every sentence the incidents app shows: the status page, the banner, the desk's drafted updates."""

from __future__ import annotations

from backstop.incidents.models import IncidentState

# Customers read the capability, not our provider's name.
CAPABILITY_NAMES: dict[str, str] = {
    "workspace": "Workspace creation",
    "email": "Email delivery",
    "sms": "Text messages",
    "payments": "Payments",
}


def capability_name(capability: str) -> str:
    return CAPABILITY_NAMES.get(capability, capability.replace("_", " ").capitalize() or "Backstop")


STATE_LABELS: dict[str, str] = {
    IncidentState.DETECTED: "Detected",
    IncidentState.INVESTIGATING: "Investigating",
    IncidentState.MITIGATED: "Mitigated, monitoring",
    IncidentState.RESOLVED: "Resolved",
}

AUTO_TITLE = "{capability} is failing"

SEVERITY_RULE = (
    "SEV-1: a customer lost money, or {sev1} or more customers are affected. "
    "SEV-2: a customer is locked out (cannot sign in, or waits for a workspace), or {sev2} or more are affected. "
    "SEV-3: anything else. The rule only raises a live incident's severity; staff may set it by hand."
)

# The drafted update for each state, one click from posted (staff may edit the text first).
DRAFTED_UPDATES: dict[str, str] = {
    IncidentState.DETECTED: (
        "{capability} is not working right now. We noticed at {detected}. Nothing you did caused this; "
        "what you already started is kept and will finish by itself once it works again."
    ),
    IncidentState.INVESTIGATING: (
        "We are investigating why {capability} is failing ({customers} customers affected so far). "
        "Your data is safe; we will post the next update here."
    ),
    IncidentState.MITIGATED: (
        "{capability} works again since {mitigated}. We are finishing what waited on it and watching it closely."
    ),
    IncidentState.RESOLVED: (
        "{capability} has worked normally since {mitigated}. Everything that waited on it has been finished. "
        "We are sorry for the disruption."
    ),
}

STATUS_ALL_GOOD = "All systems working"
STATUS_PROBLEM = "Some things are not working"
BANNER_TEXT = "{capability}: {state}. {body}"
STATUS_LINK = "Service status"

TRANSITION_REFUSED = "An incident that is {current} cannot become {target}."
STAFF_OPENED = "Opened by {staff}"
STATE_CHANGED = "{old} -> {new}"
SEVERITY_CHANGED = "Severity {old} -> {new} ({why})"
SEVERITY_BY_RULE = "by the rule"
SEVERITY_BY_STAFF = "set by {staff}"
BREAKER_OPENED = "The {provider} breaker opened after repeated failures: {error}"
FIRST_FAILURE = "First failed call to {provider}"
FIRST_RECOVERY = "First call to {provider} that succeeded again"
DEPLOY = "Deploy: {count} migrations applied{names}"
UPDATE_EMPTY = "Write what customers should read."
STATUS_LINK_TEXT = "Is something not working? See the service status"
SEVERITY_RULE_SHORT = "SEV-1 money lost or many customers, SEV-2 locked out or several, SEV-3 the rest"
# What a customer lost, by the affected row's ``lost`` (a setup step or an attention record's kind).
LOST_NAMES: dict[str, str] = {
    "workspace": "creating their workspace (they could not use the product)",
    "welcome_email": "receiving their welcome email",
    "setup_stalled": "their account setup (it ran out of retries)",
    "email_undelivered": "an email we owed them",
    "payment_unresolved": "a payment that could not be settled",
    "payment_unmatched": "a payment we took without giving them what they paid for",
    "order_without_payment": "an order whose payment we could not find",
    "refund_partial": "part of a refund",
    "refund_unconfirmed": "a refund the processor has not confirmed",
    "email_key_shared": "their account's address, which another account shares",
}
PRIORITY_UNKNOWN = "Choose P0, P1 or P2."
OWNER_NOT_STAFF = "The owner must be one of the team."
REVIEW_REMINDER_SUBJECT = "30 days on: review the action items of \"{title}\""
REVIEW_REMINDER = (
    "Hello {name},\n\n"
    "It is 30 days since \"{title}\". {open_count} of its action items are still open; yours:\n{items}\n\n"
    "Are they still worth doing? Finish, drop or defer them on the desk."
)
AMENDS_SUBJECT = "What the {capability} outage cost you, and what we are doing about it"
AMENDS_TEXT = (
    "Hello {name},\n\n"
    "On {start} UTC, {capability} stopped working for us, until {end} UTC. You were affected from {since}: "
    "you waited {minutes} minutes for {lost}. {finished}\n\n"
    "{credit}That was our failure, not yours, and we are sorry. The full account is on our status page."
)
AMENDS_FINISHED = "It finished by itself at {at}; nothing of what you had done was lost."
AMENDS_NOT_FINISHED = "It has not finished yet: our support team has it and will write to you when it has."
AMENDS_CREDIT = "We have added {days} days to your plan, at no cost. "
AMENDS_CREDIT_REASON = "amends for the incident \"{incident}\""
BREAKER_CLOSED = "The {provider} breaker closed: calls go through again"
AMENDS_EVENT = "Amends: {sent} messages sent, {credited} credits of {days} days granted ({already} already told)"
