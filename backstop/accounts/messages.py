"""Every sentence the accounts surface says to a person, in one place (what every app says is in lib.site_messages).

A notice says what happened, what we are doing, and what the person can do; when the failure is ours,
it says so. Keys are (state, action) so a test can prove every combination is covered.
"""

from __future__ import annotations

from backstop.accounts.models import AccountState
from backstop.lib.site_messages import Notice

ACTIONS = ("signup", "login", "resignup", "recovery", "setup_page")

_SETTING_UP_DOING = (
    "We're finishing your set-up in the background and keep retrying by ourselves if a provider is slow."
)
_NEEDS_ATTENTION_HAPPENED = (
    "Your account is saved, but we could not finish setting it up after several tries. "
    "That is our failure, not yours, and we're sorry it is costing you time."
)
_NEEDS_ATTENTION_DOING = "Our support team already has the details and will finish it for you."
_NEEDS_ATTENTION_YOU_CAN = (
    "You don't need to sign up again. You can press “Try again now”, or write to us from the contact page."
)
_DISABLED = Notice(
    "This account has been disabled, so it can't be used right now.",
    "Nothing is being changed on it.",
    "If you think this is a mistake, write to us from the contact page and a person will reply.",
)

CATALOGUE: dict[tuple[str, str], Notice] = {
    (AccountState.SETTING_UP, "signup"): Notice(
        "Your account is created and you're signed in.",
        _SETTING_UP_DOING,
        "You can watch each step on this page; it updates by itself.",
    ),
    (AccountState.ACTIVE, "signup"): Notice(
        "Your account is created and your workspace is ready.", "", "You can start using it now."
    ),
    (AccountState.NEEDS_ATTENTION, "signup"): Notice(
        _NEEDS_ATTENTION_HAPPENED, _NEEDS_ATTENTION_DOING, _NEEDS_ATTENTION_YOU_CAN
    ),
    (AccountState.DISABLED, "signup"): _DISABLED,
    (AccountState.SETTING_UP, "login"): Notice(
        "You're signed in. Your account exists; we haven't finished setting up your workspace yet.",
        _SETTING_UP_DOING,
        "This page shows each step live, and you can press “Try again now” at any time.",
    ),
    (AccountState.ACTIVE, "login"): Notice("You're signed in.", "", ""),
    (AccountState.NEEDS_ATTENTION, "login"): Notice(
        "You're signed in. " + _NEEDS_ATTENTION_HAPPENED, _NEEDS_ATTENTION_DOING, _NEEDS_ATTENTION_YOU_CAN
    ),
    (AccountState.DISABLED, "login"): _DISABLED,
    (AccountState.SETTING_UP, "resignup"): Notice(
        "You already have an account with us; we recognised your password, so you're signed in.",
        "We hadn't finished setting it up, so we're trying again right now.",
        "You don't need to do anything else; this page shows each step.",
    ),
    (AccountState.ACTIVE, "resignup"): Notice(
        "You already have an account with us; we recognised your password, so you're signed in.", "", ""
    ),
    (AccountState.NEEDS_ATTENTION, "resignup"): Notice(
        "You already have an account with us; we recognised your password, so you're signed in. "
        "Setting it up failed earlier, which is our fault.",
        "We've started setting it up again right now, and our support team knows about it.",
        "You don't need to sign up again; this page shows each step.",
    ),
    (AccountState.DISABLED, "resignup"): _DISABLED,
    (AccountState.SETTING_UP, "recovery"): Notice(
        "Your code is correct and you're signed in.", _SETTING_UP_DOING, "This page shows each step."
    ),
    (AccountState.ACTIVE, "recovery"): Notice("Your code is correct and you're signed in.", "", ""),
    (AccountState.NEEDS_ATTENTION, "recovery"): Notice(
        "Your code is correct and you're signed in. " + _NEEDS_ATTENTION_HAPPENED,
        _NEEDS_ATTENTION_DOING, _NEEDS_ATTENTION_YOU_CAN,
    ),
    (AccountState.DISABLED, "recovery"): _DISABLED,
    (AccountState.SETTING_UP, "setup_page"): Notice(
        "We're setting up your account.",
        _SETTING_UP_DOING + " If it takes more than a moment, we'll email you when it's ready.",
        "You don't need to do anything; you can press “Try again now” if you'd rather not wait.",
    ),
    (AccountState.ACTIVE, "setup_page"): Notice("Your account is ready.", "", "You can start using your workspace."),
    (AccountState.NEEDS_ATTENTION, "setup_page"): Notice(
        _NEEDS_ATTENTION_HAPPENED, _NEEDS_ATTENTION_DOING, _NEEDS_ATTENTION_YOU_CAN
    ),
    (AccountState.DISABLED, "setup_page"): _DISABLED,
}


# The setup gave up while its provider is down and the desk shows the customer waiting on that incident: automation
# retries it when the provider is back (not a person), so the page says so, as the desk does.
NEEDS_ATTENTION_WAITING_ON_PROVIDER = Notice(
    "Your account is saved, but we could not finish setting it up: our {provider} provider is failing. "
    "That is our failure, not yours, and we're sorry it is costing you time.",
    "We're watching it and will try again by ourselves as soon as it works again; we'll email you when it's done.",
    "You don't need to do anything or sign up again. You can press “Try again now” at any time.",
)


def notice(state: str, action: str) -> Notice:
    return CATALOGUE[(state, action)]


EMAIL_TAKEN = Notice(
    "An account with this email address already exists.",
    "We haven't changed anything on it.",
    "Sign in with your password, or get a sign-in code if you've forgotten it.",
)
INVALID_CREDENTIALS = Notice(
    "That email and password don't match an account we can sign you in to.",
    "",
    "Check both and try again, or get a sign-in code sent to your phone and email.",
)
RECOVERY_SENT = Notice(
    "If an account exists for that address, we've sent a sign-in code to its phone by SMS and to its email.",
    "The code works for 10 minutes.",
    "Enter it on the next page. No code after a few minutes? Ask for a new one or write to us.",
)
CODE_REJECTED = Notice(
    "That code didn't work: it may be mistyped, used already or older than 10 minutes, or it was tried wrongly five "
    "times from your network.",
    "",
    "Check it and try again, or use the sign-in link in the same email. If neither works, ask for a new code.",
)
# The one-time sign-in link sent by email with each code: its page asks for a press of the button, so that a mail
# scanner opening the link does not use it.
LINK_CONFIRM_TITLE = "Sign in with your link"
LINK_CONFIRM = Notice("This is the sign-in link we emailed you.", "It works once, within 10 minutes of being sent.",
                      "Press Sign in to continue. You can also choose a new password here.")
LINK_REJECTED = Notice(
    "That sign-in link doesn't work: it has been used already (each link works once, and using its code uses it "
    "too), or it is older than 10 minutes.",
    "Nothing has been changed.",
    "Ask for a new one: we'll email you a new link and send a new code.",
)
GET_LINK_AND_CODE = "Get a sign-in link and code"
# A sign-in route refused for a while (wrong passwords or codes, or too many codes asked for): the way in that no one
# else can spend is said too, so the owner never simply waits (HTML pages add a link to /recover).
SIGN_IN_RATE_LIMITED = Notice(
    "There have been too many attempts in a short time.",
    "We pause them for a little while to keep your account safe.",
    "Please try again in {minutes} minute(s), or sign in now with a sign-in link or code: ask for one at /recover. "
    "A sign-in link we have already emailed you works too, within its 10 minutes.",
)
EMAIL_VERIFIED = Notice("Your email address is confirmed. Thank you.", "", "")
VERIFY_LINK_BAD = Notice(
    "That confirmation link has expired or isn't valid.", "", "Sign in and ask for a code by SMS instead."
)
RETRY_STARTED = Notice("We're trying again now.", "Each step below updates as it happens.", "")
# "Try again now" while the provider of every step left is down (its breaker open): nothing can be tried now, and the
# provider's recovery retries it by itself.
RETRY_PROVIDER_DOWN = Notice(
    "Our {provider} provider is down right now; we'll try the moment it answers again — no need to press again.",
    "", "")
# Which banner depends on where the welcome email is: it points at the email's link only once the email has gone.
VERIFY_EMAIL_BANNER = (
    "Please confirm your email address, {email}, with the link in our welcome email. "
    "If it hasn't arrived, we can send you a code by SMS instead."
)
VERIFY_EMAIL_BANNER_SENDING = (
    "Our welcome email to {email} is on its way: please confirm your address with the link in it. "
    "If it doesn't arrive, we can send you a code by SMS instead."
)
# Not sent after a try: each says what we are doing about it, and the banner offers to send it again.
VERIFY_EMAIL_BANNER_UNSENT = {
    # Its last try failed and another is scheduled.
    "retrying": (
        "We couldn't send your welcome email to {email} yet; we're trying again by ourselves. To confirm your address "
        "now, we can send you a code by SMS, or you can ask us to send the email again."
    ),
    # Our email provider is down (its breaker open, or an incident the desk shows as automation's): the provider's
    # recovery sends it.
    "provider_down": (
        "We couldn't send your welcome email to {email} yet; we'll send it when our email provider is back. "
        "To confirm your address now, we can send you a code by SMS, or you can ask us to send the email again."
    ),
    # It gave up with the provider working: a person has the case (the desk's queue).
    "gave_up": (
        "We couldn't send your welcome email to {email}; our support team has it. To confirm your address now, we "
        "can send you a code by SMS, or you can ask us to send the email again."
    ),
}

STEP_STATUS_TEXT = {
    "pending": "Under way: we're trying it now.",  # not yet recorded: the attempt is running or about to
    "retrying": "Attempt {attempts} failed: {error}. We'll try again {next_attempt}.",
    # No time is named: the next try is when the provider answers again, which nobody can promise.
    "waiting": "Our {provider} provider is down right now, so we're waiting for it to answer again; we'll try the "
               "moment it does.",
    "done": "Done.",
    "failed": "We stopped retrying after {attempts} attempts ({error}). Our support team has it.",
}
# A step that gave up while its provider is down, the customer waiting on that incident (the desk: "automation
# retrying, no action needed"): automation tries it again when the provider works, not a person.
STEP_FAILED_WAITING_ON_PROVIDER = (
    "We stopped retrying after {attempts} attempts ({error}). Our {provider} provider is failing; we'll try again by "
    "ourselves as soon as it works again."
)
# A step between tries whose provider went down since (its breaker open): the next try waits for the provider, so the
# time it had is not named any more.
STEP_RETRYING_PROVIDER_DOWN = (
    "Attempt {attempts} failed: {error}. Our {provider} provider is down right now; we'll try again the moment it "
    "answers."
)
# The last automatic attempt failed while another step still runs: no time to promise, the button still works.
STEP_BUDGET_SPENT_TEXT = (
    "Attempt {attempts} failed: {error}. That was our last automatic try; press “Try again now” to try it again, or "
    "our support team takes it from here."
)
PROVIDER_NAMES = {"workspace": "workspace", "welcome_email": "email"}
# When the next try is: a time still ahead, or "now" (due, or under way: a time already past is never shown).
NEXT_ATTEMPT_AT = "at {at}"
NEXT_ATTEMPT_NOW = "now"
# A setup step's error when our own code failed, not the provider (shown as {error} above). The exception's details
# go to the log, not to the customer.
STEP_UNEXPECTED_ERROR = "a fault on our side, not our provider's, which we have recorded to fix"

FIELD_ERRORS = {
    "email_required": "Enter your work email address.",
    "email_invalid": "Enter a valid email address, like name@company.com.",
    "email_not_ascii": "We can't send email to an address with letters beyond a-z before the @ yet. Please use "
                       "another address if you have one.",
    "email_too_long": "Email addresses can be at most 254 characters.",
    "phone_required": "Enter a phone number; we use it to send you a code if email isn't working.",
    "phone_invalid": "Enter a valid phone number with its country code, like +1 415 555 0100.",
    "name_required": "Enter your name.",
    "company_required": "Enter your company's name.",
    "too_long": "This can be at most {limit} characters.",
    "control_characters": "Remove the invisible control characters from this field.",
    "code_required": "Enter the 6-digit code we sent you.",
    "password_required": "Enter your password.",
    "phone_not_mobile": "That looks like a landline or service number, and sign-in codes come by SMS. Please give a "
                        "mobile number.",
}

# A same-password signup whose details differ from the account's (accounts.details).
DETAIL_LABELS = {"name": "name", "company": "company", "phone": "phone"}
DETAIL_KEPT = "{label} {kept} (you typed {typed})"
DETAILS_KEPT = "We haven't changed the details on your account yet and kept: {changes}. {how}"
DETAILS_HOW = "To use the ones you typed, confirm them at {url}."
DETAILS_HOW_PHONE = (
    "To use the ones you typed, enter the code we've just sent by SMS to {phone} at {url}; until then sign-in codes "
    "keep going to the phone on file and to your email."
)
DETAIL_CHANGED = "{label} {old} → {new}"
DETAILS_APPLIED = Notice("Your details are updated: {changes}.", "We've emailed the address on file about it.", "")
DETAILS_NOTHING_PENDING = Notice(
    "There are no new details waiting for your confirmation (they wait for one hour).", "",
    "To change them, sign up again with your password and the new details, or write to us from the contact page.",
)
DETAILS_CODE_REJECTED = Notice(
    "That code didn't work: it may be mistyped or older than an hour, or five wrong tries may have used it up.", "",
    "Check it and try again, or sign up again with your password and the new details for a new code.",
)
