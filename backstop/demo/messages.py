"""Every sentence the demo's tour shows (the scenarios' own texts are in ``SCENARIO_TEXTS``, keyed as the tour's
registry, backstop/demo/tour.py)."""

from __future__ import annotations

TOUR_TITLE = "A tour of Backstop"
TOUR_INTRO = ("Backstop's promise: a customer is told the truth at every moment, and nobody falls through the cracks "
              "when a provider fails halfway. Each scenario below sets the providers' faults for you (every other "
              "provider goes back to working) and opens the page to start from. Times on every page are in your "
              "own time zone.")
TOUR_FAULTS_NOW = "Faults now:"
TOUR_ALL_OK = "every provider works"
TOUR_CLEAR = "Clear all faults"
TOUR_CLEARED = "All faults cleared: every provider works again."
TOUR_LOOK_FOR = "What to look for"
TOUR_ALSO_OPEN = "Then open"
TOUR_STAFF_SIGN_IN = ("The desk is for staff: sign in (in another browser than the customer's) as {email} with the "
                      "password {password}, which `make demo` also prints.")
TOUR_PANEL = "Every fault can also be set by hand on the fault panel."

# One entry per scenario of backstop/demo/tour.py: title, one sentence, the button, and what to look for.
SCENARIO_TEXTS: dict[str, dict[str, object]] = {
    "half_failed_signup": {
        "title": "A half-failed signup",
        "summary": "The welcome email times out and the workspace provider answers with an error while you sign up.",
        "button": "Break email and workspaces, then sign up",
        "look_for": [
            "The setup page shows each step live: what failed, in plain words, and when the next try is (\"in 30 "
            "seconds\", in your own time zone).",
            "Sign in from another browser: you land on the same page, not on \"account not found\".",
            "Clear the faults: setup finishes by itself (or press \"Try again now\"); the mailbox gets one welcome "
            "email and one saying the workspace is ready.",
        ],
    },
    "paid_but_crashed_checkout": {
        "title": "A paid-but-crashed checkout",
        "summary": "The server dies right after the processor has taken the money, before it writes the order down.",
        "button": "Crash after the charge, then buy",
        "look_for": [
            "Buy the plan with the test Visa card: the demo process exits (status 70) right after the charge.",
            "The order page says it cannot reach the server and asks you not to pay again.",
            "Run `make demo` again: the checkout resumes, the processor answers with the charge it already made, the "
            "order page turns to \"Paid\" and the mailbox holds exactly one confirmation.",
            "The fault survives the restart: clear it here before buying again.",
        ],
    },
    "outage_from_the_desk": {
        "title": "An outage seen from the desk",
        "summary": "The workspace provider goes down for everyone; the support desk sees one incident, not a pile of "
                   "cases.",
        "button": "Take workspaces down, then open the desk",
        "look_for": [
            "Sign up two or three accounts in another browser: once the circuit breaker opens, the desk shows one "
            "incident card instead of one case per customer.",
            "The status page and a banner on every page say so, live; the incident's page holds its timeline.",
            "Clear the faults: the incident resolves and each customer gets one email saying what happened.",
        ],
    },
}
