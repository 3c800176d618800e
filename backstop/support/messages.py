"""Every sentence the support desk says, to customers and to staff, in one place.

To a customer: what we actually see, what we did, what happens next, and when the failure is ours we say so.
To staff: one plain line per problem and the action that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- Names -------------------------------------------------------------------------------------------

PROVIDER_NAMES = {"workspace": "workspace", "email": "email", "sms": "SMS", "payments": "payment"}
STEP_NAMES = {"workspace": "creating the workspace", "welcome_email": "the welcome email"}
HARM_LABELS = {30: "Money taken, no access", 20: "Locked out", 10: "Degraded", 0: "Question"}


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


def failing_how(last_error: str) -> str:
    return "timing out" if "did not answer" in last_error or "timed out" in last_error else "answering with errors"


# --- Signals, as staff read them ------------------------------------------------------------------

SIGNAL_SETUP_DELAYED = "{step} is waiting for the {provider} provider ({attempts} failed attempts, last: {error})."
SIGNAL_SETUP_DELAYED_NO_ERROR = "{step} is waiting for the {provider} provider, which is failing."
SIGNAL_MESSAGE_UNDELIVERED = "Our {channel} “{subject}” to {to} could not be delivered: {error}."
SIGNAL_CONTACT = "Wrote in: “{excerpt}”"
SIGNAL_PAID_WITHOUT_ACCESS = (
    "Paid {amount} on {paid_on} ({payment_id}) and has no access; automation could not fix it: {error}"
)
SIGNAL_CONTACT_ANSWERED = "Wrote in (answered automatically: {finding}): “{excerpt}”"
CASE_MORE_SIGNALS = " (+{count} more)"
CASE_ALL_CLEAR = "Everything that was wrong is fixed; nothing open."


# --- Suggested and other actions ------------------------------------------------------------------

@dataclass(frozen=True)
class InputText:
    placeholder: str
    label: str


@dataclass(frozen=True)
class ActionText:
    label: str
    done: str
    already: str
    # The texts of the inputs on the action's form, one per parameter it takes (support.actions.STAFF_ACTIONS).
    inputs: dict[str, InputText] = field(default_factory=dict)


ACTIONS: dict[str, ActionText] = {
    "retry_setup": ActionText(
        "Retry setup now", "Setup started again; its steps update below.",
        "Nothing to retry: every setup step had already finished."),
    "complete_workspace": ActionText(
        "Complete workspace by hand", "Workspace recorded and the account is active.",
        "The workspace already existed (automation finished it first); nothing changed.",
        {"external_id": InputText("workspace id", "Workspace id created by hand")}),
    "send_code_sms": ActionText(
        "Send a code by SMS", "A sign-in code was sent by SMS (and email).",
        "No phone number on this account: nothing was sent."),
    "fulfil_from_charge": ActionText(
        "Fulfil from charge", "Access given from the payment already taken; no new charge.",
        "Already fulfilled (automation got there first); nothing changed.",
        {"payment_id": InputText("payment id or checkout reference (optional)", "Payment id or checkout reference")}),
    "check_processor": ActionText(
        "Check with the processor now", "Asked the processor just now: {answers}. The payments below show it.",
        "Nothing to ask the processor: none of this customer's checkouts reached it.",
        {"payment_id": InputText("payment id or checkout reference (optional)", "Payment id or checkout reference")}),
    "refund": ActionText("Refund", "Refunded at the processor: the order is refunded and its access has ended.",
                         "Already refunded; nothing changed.",
                         {"reference": InputText("order reference (optional)", "Order reference"),
                          "reason": InputText("reason", "Refund reason")}),
    "refund_payment": ActionText(
        "Refund payment", "Refunded at the processor: what was left of the payment goes back to the card.",
        "The processor says this payment was already refunded in full; nothing changed (our books now say so too).",
        {"payment_id": InputText("payment id (optional)", "Payment id"),
         "reason": InputText("reason", "Refund reason")}),
    "grant_credit": ActionText("Grant a credit", "Credit granted.", "That credit was already granted.",
                               {"days": InputText("days", "Credit in days"),
                                "reason": InputText("reason", "Credit reason")}),
    "merge": ActionText("Merge into another case", "Merged: this case now lives in case {target}.",
                        "Already merged or closed; nothing changed.",
                        {"target": InputText("case number", "Merge into case number")}),
    "close": ActionText("Close case", "Case closed.", "Already resolved (at {when}); nothing changed.",
                        {"note": InputText("note (optional)", "Closing note")}),
    "assign_to_me": ActionText("Assign to me", "Assigned to you.", "Already assigned to you; nothing changed."),
    "wait_on_customer": ActionText(
        "Waiting on customer", "Out of the queue until the customer writes (or anything new about them joins).",
        "Already waiting on the customer; nothing changed."),
    "snooze": ActionText(
        "Snooze", "Snoozed until {until}; it comes back then, or sooner if the customer writes.",
        "Already snoozed; nothing changed.", {"hours": InputText("hours (24 if empty)", "Snooze for how many hours")}),
    "wake": ActionText("Back to the queue", "Back in the queue.", "Not put aside: it was already in the queue."),
    "reply": ActionText("Send reply", "Reply sent; it is on the timeline below.", "That reply was already sent."),
    "wait": ActionText("No action needed", "", ""),
}
SUGGESTION_REASONS = {
    "retry_setup": "the {provider} provider is working",
    "retry_setup_unsure": "the {provider} provider failed recently but isn't marked down, so a retry may go through",
    "complete_workspace": "the workspace provider is still failing; create it by hand and record its id",
    "send_code_sms": "our emails are not reaching them; an SMS code lets them in and confirms the address",
    "fulfil_from_charge": "we took their money and they have no access",
    "refund_payment": "a payment that matches none of our checkouts goes back to the payer",
    "refund_payment_unconfirmed": "our books say refunded but the processor didn't refund it: the customer is owed it",
    "reply": "they wrote to us and automation could not answer it",
    "close": "everything is fixed; close it (or reply first)",
    "wait": "automation is retrying; no action needed",
    # Instead of "wait" when the customer was told a person will finish it (support.desk._suggestion_for).
    "reply_person_promised": ("automation is retrying while the provider is down, but we told them a person will "
                              "finish it: tell them where it stands"),
}
ACTION_FAILED = "That didn't work: {error}. Nothing else was changed."
# Our own code failed: staff get a reference an engineer can find in the log, not an exception's name.
ACTION_BROKE = ("That didn't work: our own code failed while doing it. Nothing else was changed. An engineer needs to "
                "look: give them the reference support action #{reference}.")
ACTION_NOT_AVAILABLE = "That action isn't available for this case."
# Another tab (or a colleague) clicked the same action on the same version of the case: one effect, and this is it.
ACTION_ALREADY_DONE_BY = "Already done by {who} at {when}: {result}"
ACTION_ALREADY_STARTED_BY = ("Already started by {who} at {when}; it is still running. Reload the case to see how it "
                             "ends.")
# The case moved on since the page was loaded (resolved, the setup finished...): the button no longer applies.
ACTION_NO_LONGER_APPLIES = ("Nothing was done: \"{label}\" no longer applies to this case (it changed since your page "
                            "was loaded). The page now shows what it is like.")
# A desk form whose hidden inputs are missing or damaged (an old page, a hand-made request): nothing to fix in a field.
DESK_PAGE_OUT_OF_DATE = ("Nothing was done: the form didn't carry what the case page puts in it (which action, on "
                         "which version of the case). Reload the case and try again.")
# The case page shows no errors beside its inputs (the form answers with a redirect): each problem, in words.
DESK_INPUT_INVALID = "Nothing was done: {problems}"
DESK_INPUT_PROBLEM = "{label}: {error}"
ACTION_CASE_RESOLVED = "Nothing was done: this case was already resolved at {when}{by}."
NO_CHARGE_FOUND = "We can't find a charge without access for this customer; enter the payment id."
NO_SUCH_PAYMENT = "The payment processor has no payment {payment_id}."
NO_SUCH_CHECKOUT = "There is no checkout {reference}."
NO_PAYMENT_FOR_CHECKOUT = (
    "The payment processor has no payment for checkout {reference}: nothing was charged, so there is nothing to fulfil."
)
PAYMENT_NOT_SUCCEEDED = "The processor says that payment has not succeeded ({status}), so there is nothing to fulfil."
PAYMENT_MATCHES_NO_CHECKOUT = (
    "That payment matches none of our checkouts, so there is nothing to fulfil it with; use “Refund payment” to give "
    "it back."
)
REFUND_NEEDS_ORDER = (
    "No paid order to refund for this customer; enter the order reference, or use “Refund payment” for a payment "
    "without an order."
)
PAYMENT_WAS_REFUNDED = (
    "The processor says that payment was refunded in full, so there is no access to give: order {reference} is "
    "recorded refunded and the customer was emailed that"
)
NO_PAYMENT_TO_REFUND = "We can't find a payment to refund on this case; enter the payment id."
NOT_THIS_CUSTOMERS_PAYMENT = (
    "Payment {payment_id} isn't one we know as this customer's (no checkout, order or signal of this case names it); "
    "check the id."
)
# A payment row's refunds on the case page.
PAYMENT_REFUNDED = "{refunded} of {amount} refunded on {on}"
NO_SUCH_ORDER = "There is no order {reference}."
NOT_THIS_CUSTOMERS_ORDER = (
    "Order {reference} isn't this customer's (no checkout of this case's customer made it); check the reference, or "
    "refund it from that customer's case"
)
WORKSPACE_ID_REQUIRED = "Enter the id of the workspace you created by hand."
# Django fills in the limit and the length typed; the id itself is not echoed back.
WORKSPACE_ID_TOO_LONG = ("A workspace id is at most %(limit_value)d characters, and this one has %(show_value)d: copy "
                         "the id from the provider's console.")
WORKSPACE_ID_TAKEN = "That workspace id already belongs to another account; check it and try again."
WORKSPACE_ID_UNKNOWN = ("The workspace provider has no workspace {external_id}. Nothing was changed: check the id in "
                        "the provider's console (copy it from there) and try again.")
WORKSPACE_ID_UNCHECKED = ("We couldn't ask the workspace provider whether {external_id} exists ({error}). Nothing was "
                          "changed; try again in a minute.")
MERGE_TARGET_INVALID = "Enter the number of another open case to merge into."
REPLY_EMPTY = "Write something before sending."
NOTE_EMPTY = "Write something before adding the note."
NOTE_ADDED = "Note added; only staff see it."
NO_REPLY_ADDRESS = "This case has no email address to reply to."
SAVED_REPLY_SAVED = "Saved as “{title}”."


# --- The processor's side of a payment, as last heard (support.payments) -----------------------------------------

PROCESSOR_SAYS = "processor: {status} (as of {as_of}, from {source})"
PROCESSOR_NO_PAYMENT = "no payment"
PROCESSOR_REFUNDED = ", {amount} refunded"
PROCESSOR_FROM_RECORD = "the report of this payment"
# A checkout asked the processor and we never heard back (its answer lost in a crash): "Check with the processor now".
PROCESSOR_NOT_HEARD = "processor: nothing heard yet; check with the processor now"
PROCESSOR_NOT_ASKED = "processor: not asked (no charge was requested)"
PROCESSOR_CHECKED = "{what}: {status}"


# --- Incidents ---------------------------------------------------------------------------------------

INCIDENT_CARD = "{provider} provider {how} since {since} UTC, {count} customer{s} waiting, {doing}"
INCIDENT_DOING = {
    "open": "automation retrying, no action needed",
    "recovering": "provider working again since {cleared} UTC, automation finishing",
    "resolved": "resolved at {resolved} UTC; every customer was told",
}
INCIDENT_NEEDS_HAND = "{count} of them need a person: they are in the queue below."
# The desk's card and the incident record of the same outage link to each other.
DESK_CARD_LINK = "Desk card {pk}: the cases this outage grouped"
RECORD_LINK = "Incident record: status updates, timeline, post-mortem"
# No process running workflows: the web keeps answering, and setups, emails and checkouts wait (none is lost).
NO_WORKFLOW_RUNNER = (
    "No workflow runner has reported in {since}: new setups, emails and checkouts are waiting (nothing is lost; "
    "they start as soon as one runs). This needs whoever runs our servers: start \"backstop worker\", or, if "
    "\"backstop serve\" runs them, find out why its worker keeps stopping."
)
NO_WORKFLOW_RUNNER_SINCE = "since {moment} UTC"
NO_WORKFLOW_RUNNER_EVER = "yet"


# --- What the customer hears when they write in -----------------------------------------------------

# Shown to whoever typed the address before anything is looked up: the same words, and as fast, for any address.
CONTACT_PUBLIC = (
    "Thank you, we've got your message (reference {reference}). We're looking up what we know about this address "
    "now and will email what we find, with what happens next, to the email address on file (at most one such email "
    "a day; a person reads every message). You don't need to write again."
)
# The signed-in owner, when the look-up takes longer than the page waits.
CONTACT_OWNER_PENDING = (
    "Thank you, we've got your message (reference {reference}). We're still looking into your account; we'll email "
    "you what we find and what happens next in a few minutes. You don't need to write again."
)
CONTACT_GREETING = "Hello{name},"
CONTACT_SIGNOFF = "The Backstop team"
CONTACT_REFERENCE = "Your reference: {reference}."
CONTACT_FINDINGS = {
    "no_account": (
        "We don't have an account for {email}. If you signed up with another address, write to us from that one. "
        "A person will read your message and reply within one working day."
    ),
    "all_well": (
        "We looked at your account: it is active and we don't see anything wrong on our side right now. "
        "A person will read your message and reply within one working day."
    ),
    "setup_fixed": (
        "We see your account setup hadn't finished ({what}). That was our failure, not yours. We tried again as soon "
        "as your message arrived and it has now finished: {now}. "
        "If your message was about something else, write to us again and a person will answer."
    ),
    "setup_retrying": (
        "We see your account setup hadn't finished ({what}). That was our failure, not yours. We started it again "
        "as soon as your message arrived and it is running now; we'll email you once when it's done. "
        "You don't need to sign up again."
    ),
    "setup_waiting": (
        "Your account is saved, but setting it up is waiting for our {provider} provider, which has been failing "
        "since {since}. That is our failure, not yours. Your setup will finish by itself as soon as the provider "
        "recovers, and we'll email you once when it's done. You don't need to do anything or sign up again."
    ),
    "setup_needs_human": (
        "We see your account setup didn't finish ({what}). That is our failure, not yours. We tried again as soon "
        "as your message arrived and it is still failing, so a person on our team now has your case and will "
        "finish it by hand within one working day. We'll email you when it's done. You don't need to sign up again."
    ),
    "email_undelivered": (
        "We see our emails to this address haven't been getting through ({error}). We've sent a sign-in code by "
        "SMS to the phone number on your account; entering it at {verify_url} signs you in and confirms your "
        "address. A person will also read your message and reply within one working day."
    ),
    "payment_fulfilled": (
        "We see your {amount} payment from {paid_on}. You will not be charged again. Your access is active now."
    ),
    "payment_needs_human": (
        "We see your {amount} payment from {paid_on}, and that your access isn't active yet. That is our failure. "
        "You will not be charged again. A person on our team now has your case and will give you access or refund "
        "you in full within one working day, and email you when it's done."
    ),
    "setup_under_way": (
        "Your account is being set up right now; it usually takes a few seconds, and the page you see after signing up "
        "shows each step as it happens. A person will read your message and reply within one working day."
    ),
    "setup_finished_anyway": (
        "Your account has finished setting up: {now}. "
        "A person will read your message and reply within one working day."
    ),
    "disabled": (
        "This account is disabled, so nothing can be changed on it from here. "
        "A person will read your message and reply within one working day."
    ),
    "payment_being_checked": (
        "We see your checkout {reference} for {amount} from {started_on}. It hasn't finished on our side yet, and we "
        "are confirming with our payment processor now whether your card was charged. You won't be charged twice, and "
        "you don't need to pay again: if the payment went through, your order is finished and your access switched on "
        "by itself; if it didn't, nothing was taken. Either way we'll email you within {minutes} minutes."
    ),
    "payment_complete": (
        "We see your {amount} payment from {paid_on} (order {reference}). It went through once and your order is "
        "complete: {product} is active until {until}. You don't need to pay again. "
        "A person will also read your message and reply within one working day."
    ),
    "payment_refunded": (
        "We see your {amount} payment from {paid_on} (order {reference}). It was refunded in full on {refunded_on}; "
        "banks usually show a refund within 5 to 10 working days. "
        "A person will also read your message and reply within one working day."
    ),
    "payment_not_charged": (
        "We see your checkout {reference} from {started_on}: your card was not charged ({why}), so nothing was taken. "
        "You can buy again at {checkout_url}. "
        "A person will also read your message and reply within one working day."
    ),
}
# What automation saw of a setup still under way when the customer wrote (kept on the case for staff).
SETUP_SEEN_UNDER_WAY = "setup was still under way when they wrote, nothing had failed ({steps})"
SETUP_NOW_READY = "your workspace is ready and you can sign in"
# Why a checkout was not charged, in the customer's words.
NOT_CHARGED_DECLINED = "the card was declined"
NOT_CHARGED_CONFIRMED = "our payment processor confirmed that no payment was made"
CONTACT_SUBJECT = "We've got your message ({reference})"
FIELD_EMAIL = "Enter the email address you use with us, like name@company.com."
FIELD_MESSAGE = "Tell us what's wrong in a few words."
FIELD_MESSAGE_TOO_LONG = "Please keep it under {limit} characters."
FIELD_REFERENCE_TOO_LONG = "A reference is at most {limit} characters."
FIELD_CONTROL_CHARACTERS = "Remove the invisible control characters from this field."


# --- One message that owns the failure, when a case resolves by itself ------------------------------

RESOLVED_SUBJECT = "It's fixed: sorry about {what}"
RESOLVED_INCIDENT = (
    "Our {provider} provider failed from {since} to {until}, and because of that {what}. That was our failure, "
    "not yours, and we're sorry it cost you {cost} of waiting. It's fixed now: {now}. You don't need to do anything."
)
RESOLVED_ALONE = (
    "Earlier, {what}. That was our failure, not yours, and we're sorry it cost you {cost} of waiting. "
    "It's fixed now: {now}. You don't need to do anything."
)
RESOLVED_MORE = "If anything still looks wrong, write to us at {contact_url} and a person will answer."
RESOLVED_WHAT = {
    "workspace": "setting up your workspace was delayed",
    "email": "our emails to you were delayed",
    "sms": "our text messages to you were delayed",
}
RESOLVED_WHAT_SHORT = {"workspace": "the delay setting up your account", "email": "our delayed emails",
                       "sms": "our delayed text messages"}
RESOLVED_NOW = {"workspace": "your workspace is ready and you can sign in", "email": "our emails reach you again",
                "sms": "our text messages reach you again"}


# --- Replies -----------------------------------------------------------------------------------------

REPLY_SUBJECT = "About your Backstop account"
REPLY_SIGNATURE = "{staff_name}\nBackstop support"
# A staff account named only for the team ("Support") signs as the team, not "Support / Backstop support".
REPLY_SIGNATURE_TEAM = "Backstop support"
REPLY_GREETING = "Hello {name},"
REPLY_TEMPLATES = {
    "setup": (
        "What happened: when you signed up on {signed_up}, {failure}. That was our fault, not yours.\n\n"
        "What we did: {did}\n\n"
        "What it cost you: {cost}. I'm sorry for that."
    ),
    "email": (
        "What happened: our emails to you weren't getting through ({failure}). That was our fault, not yours.\n\n"
        "What we did: {did}\n\n"
        "What it cost you: {cost}. I'm sorry for that."
    ),
    "money": (
        "What happened: we took your payment ({failure}) but didn't give you access. That was our fault.\n\n"
        "What we did: {did}\n\n"
        "What it cost you: {cost}. You won't be charged again, and I'm sorry for the worry."
    ),
    "question": "Thank you for your message.\n\n{did}",
}
REPLY_DID_NOTHING_YET = "[say what you did]"
REPLY_DID_ACTIONS = "{actions}."
# "It's working now" only when it is (the setup finished, the payment's access on, our emails delivered again), said
# of the thing that works rather than of the last action, which may not be what fixed it.
REPLY_DID_FIXED = "{actions}. {done}"
REPLY_DONE = {
    "setup": "Your workspace is ready now, and you can sign in.",
    "email": "Our emails are reaching you again now.",
    "money": "Your payment is settled now.",
}
REPLY_COST_LOCKED = "{duration} without your workspace"
REPLY_COST_DEGRADED = "{duration} without our emails"
REPLY_COST_MONEY = "{amount} paid and {duration} without access"
REPLY_COST_UNKNOWN = "[say what it cost them]"
DID_TEXT = {
    "retry_setup": "I restarted your account set-up at {at}",
    "complete_workspace": "I created your workspace by hand at {at}",
    "send_code_sms": "I sent you a sign-in code by SMS at {at}",
    "fulfil_from_charge": "I switched on your access from the payment you'd already made, at {at}",
    "refund": "I refunded your payment at {at}",
    "refund_payment": "I refunded your payment at {at}",
    "grant_credit": "I added a credit to your account at {at}",
}
# The same actions when a colleague of the signing agent ran them.
DID_TEXT_TEAM = {
    "retry_setup": "we restarted your account set-up at {at}",
    "complete_workspace": "we created your workspace by hand at {at}",
    "send_code_sms": "we sent you a sign-in code by SMS at {at}",
    "fulfil_from_charge": "we switched on your access from the payment you'd already made, at {at}",
    "refund": "we refunded your payment at {at}",
    "refund_payment": "we refunded your payment at {at}",
    "grant_credit": "we added a credit to your account at {at}",
}
# The same actions when automation ran them: the agent signing the reply did not, so "we".
DID_TEXT_AUTOMATION = {
    "retry_setup": "we automatically restarted your account set-up at {at}",
    "complete_workspace": "we recorded your workspace at {at}",
    "send_code_sms": "we automatically sent you a sign-in code by SMS at {at}",
    "fulfil_from_charge": "we automatically switched on your access from the payment you'd already made, at {at}",
    "refund": "we refunded your payment at {at}",
    "refund_payment": "we refunded your payment at {at}",
    "grant_credit": "we added a credit to your account at {at}",
}


# --- Staff notifications -----------------------------------------------------------------------------

STAFF_URGENT_SUBJECT = "Money at risk: {email}"
STAFF_URGENT_TEXT = "Money at risk: {email}: {summary} Open the case: {url}"
STAFF_INCIDENT_TEXT = "Incident: {card} {url}"
STAFF_CASE_TEXT = "{harm}: {email}: {summary} {url}"
STAFF_DIGEST_SUBJECT = "Support digest: {count} item{s}"
STAFF_DIGEST_INTRO = "Since the last digest (nothing here needs you this minute):"
STAFF_URGENT_INTRO = "This needs a person soon: money was taken and the customer has no access."


# --- The desk ----------------------------------------------------------------------------------------

DESK_EMPTY = "Nothing needs a person right now."
WEEK_TITLE = "The last 7 days"
WEEK_SUMMARY = (
    "{opened} opened, {resolved} resolved, median time to resolution {median}, "
    "{automated} fixed by automation without a person."
)
WEEK_NO_MEDIAN = "n/a"


def plural(count: int) -> str:
    return "" if count == 1 else "s"


def duration_text(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} minute{plural(minutes)}"
    hours = round(minutes / 60, 1)
    if hours < 48:
        whole = int(hours) if hours == int(hours) else hours
        return f"{whole} hour{'' if hours == 1 else 's'}"
    days = round(hours / 24)
    return f"{days} day{plural(days)}"


# --- Promises to the customer, tracked on the case (support.commitments) ----------------------------------------

COMMITMENT_TEXTS = {
    "email_when_done": "we'll email you when it's done",
    "person_finishes": "a person on our team will finish it within one working day",
    "person_replies": "a person will read your message and reply within one working day",
    "retry_at": "we'll try again at the time shown",
}
COMMITMENT_RETRY_TEXT = "we'll try again at {at}"
COMMITMENT_HANDED_OVER_TEXT = "our support team has it (the setup page, after we stopped retrying)"
KEPT_BY_REPLY = "a person replied"
KEPT_BY_EMAIL = "emailed: “{subject}”"
# A next-try time the provider's outage overtook: no try could happen then, and the page stopped naming a time.
SUPERSEDED_PROVIDER_DOWN = ("superseded: our {provider} provider went down before then, so we try the moment it "
                            "answers again (the setup page says so, with no time)")
KEPT_BY_FINISHING = "finished ({who})"
KEPT_BY_ATTEMPT = "tried again"
COMMITMENT_OPEN = "not kept yet"
COMMITMENT_OVERDUE = "overdue"
# A queue row's promise still open: what a person owes the customer, and by when.
QUEUE_PROMISE = "promised by {due} UTC: “{text}”"
QUEUE_PROMISE_OVERDUE = "promise overdue since {due} UTC: “{text}”"
CLOSE_UNKEPT = (
    "Not closed: we promised this customer {count} thing{s} not done yet: {promises}. The reply below is drafted to "
    "keep them: send it first, or close anyway if it is kept some other way."
)
CLOSE_ANYWAY = "Close anyway"
# A resolved case shows that it is resolved, not the harm or the incident it had while open.
CASE_RESOLVED_BADGE = "Resolved"

# --- The desk's search box (support.search) --------------------------------------------------------------
SEARCH_PLACEHOLDER = "Find a customer or case: address, name, company, phone, BK-… reference, payment id, words"
SEARCH_TOO_SHORT = "Type at least {count} characters."
SEARCH_NOTHING = "No customer or case matches “{query}”."
SEARCH_OPEN = "Open: {harm}"
SEARCH_INCIDENTS = "Incidents"
SEARCH_POSTMORTEM = "Post-mortem"
SEARCH_RESOLVED = "Resolved {when}: {resolution}{note}"
SEARCH_RESOLVED_PLAIN = "resolved"
SEARCH_TRIGRAM_MISSING = ("The desk's search has no trigram index: the pg_trgm extension could not be created, so "
                          "partial addresses and names are found by scanning every case's entry (slower past ~50k "
                          "cases).")
SEARCH_TRIGRAM_HINT = ("Run CREATE EXTENSION pg_trgm as a superuser, then `backstop migrate support 0011` and "
                       "`backstop migrate` to add the index.")

# --- Working states (support.working_states, support.wakeups) ------------------------------------------
ASSIGNED_FROM = "Assigned to you (it was {who}'s)."
WOKEN_BECAUSE = "Back in the queue: {why}"
WAKE_WHY_SIGNAL = "new about the customer: {summary}"
WAKE_WHY_SNOOZE_OVER = "the snooze ended."
STATE_ASSIGNED = "Assigned to {who}"
STATE_WAITING = "Waiting on the customer since {since}"
STATE_SNOOZED = "Snoozed until {until}"
STATE_SNOOZE_OVER = "Snooze ended at {until}"
DESK_SLEEPING = "Put aside"

# --- Collision detection (support.presence) --------------------------------------------------------------
PRESENCE_COLLEAGUE = "{who} has this case open too."
PRESENCE_OWN_TAB = "You have this case open in another tab too."
NEWER_CONTACT = "{who} wrote at {when}"
NEWER_REPLY = "{who} replied at {when}"
PRESENCE_NEWER = "Since this page was drawn: {what}. Reload to read it before you reply."
REPLY_NEWER_EXISTS = ("Not sent: since you opened this case, {what}. Read it below; your reply is kept in the form. "
                      "Send it again if it still fits.")

# --- First answer (support.first_answer) -----------------------------------------------------------------
FIRST_ANSWER_WAITING = "unanswered for {waited} (target {target})"
FIRST_ANSWER_GIVEN = "answered after {waited} (target {target})"
SHORTCUTS_HELP = ("Keys: / search · j / k move in the queue · Enter or o open · n next case · r reply · c close "
                  "(then Enter) · ? this list")

# --- The weekly summary to staff (support.weekly) ---------------------------------------------------------
WEEKLY_LABEL = "week {week} of {year} ({start:%-d %b} to {last:%-d %b})"

# --- Inbound email (support.inbound, support.inbound_webhooks) ----------------------------------------------
SIGNAL_INBOUND_REPLY = "Replied by email: “{excerpt}”"
SIGNAL_INBOUND_NEW = "Wrote by email: “{excerpt}”"
REOPENED_BY_REPLY = "Reopened: the customer replied by email."
INBOUND_TIMELINE = {
    "reply": "Replied by email: {subject}",
    "auto_reply": "Automatic reply (not a person; nothing reopened, nothing sent): {subject}",
    "bounce": "Bounce: our email was not delivered ({subject})",
    "unparseable": "Malformed email, kept as received: {problem}",
}
INBOUND_OTHER_SENDER = "{email} (not this customer's address: check before acting on it)"
INBOUND_SHOW_FULL = "show full message"
# The case page's timeline shows its newest entries; the rest a page at a time.
TIMELINE_EARLIER = "Show earlier"
TIMELINE_NONE_EARLIER = "Nothing earlier."
TIMELINE_EARLIER_TITLE = "Case {case}: earlier timeline, before {moment}"
INBOUND_ATTACHMENT_REFUSED_SIZE = "larger than {limit} bytes"
INBOUND_ATTACHMENT_REFUSED_TOTAL = "the message's attachments passed {limit} bytes"
INBOUND_ATTACHMENT_REFUSED_TYPE = "type {content_type} is not accepted"
INBOUND_CASELESS_HEADING = "Email not on any case"
# The webhook's answers (plain text: an ESP's log shows them).
INBOUND_STORED = "stored"
INBOUND_DUPLICATE = "already stored"
INBOUND_NOT_CONFIGURED = "no inbound webhook for this provider"
INBOUND_REFUSED_SIGNATURE = "refused: {why}"
INBOUND_SIGNATURE_UNREADABLE = "the signature's timestamp or token cannot be read"
INBOUND_SIGNATURE_STALE = "the signature's timestamp is more than a day from now"
INBOUND_SIGNATURE_REUSED = "this signature was already used for another message"
INBOUND_TOO_MANY_PARTS = "refused: the form has more than {limit} parts"
INBOUND_TOO_LARGE = "refused: the body is larger than {limit} bytes"
INBOUND_MALFORMED = "malformed message, kept as received: {problem}"
INBOUND_DOMAIN_INVALID = "BACKSTOP_INBOUND_DOMAIN must be a domain name (like reply.example.com), not {value!r}."
INBOUND_DOMAIN_HINT = "Set it to the domain whose mail the ESP's inbound route forwards to /inbound/<esp>/."
INBOUND_LIMITS_INVALID = ("BACKSTOP_INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES must be at least "
                          "BACKSTOP_INBOUND_ATTACHMENT_MAX_BYTES, and both below BACKSTOP_INBOUND_MAX_BODY_BYTES.")
