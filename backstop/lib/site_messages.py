"""The sentences the whole site says, whichever app is answering: the shape of a notice, and the answers of the
API and the error pages that belong to no one feature (input to fix, a request we could not read, a rate limit).

A notice says what happened, what we are doing, and what the person can do; when the failure is ours, it says so.
Each app keeps its own sentences in its own ``messages`` module, built from ``Notice``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notice:
    happened: str
    doing: str
    you_can: str

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.happened, self.doing, self.you_can) if part)


RATE_LIMITED = Notice(
    "There have been too many attempts in a short time.",
    "We pause them for a little while to keep the service and its accounts safe.",
    "Please try again in {minutes} minute(s).",
)
NOT_SIGNED_IN = Notice("You're not signed in.", "", "Sign in with your email and password, or ask for a code.")
INVALID_INPUT = Notice("Some details need fixing before we can continue.", "Nothing has been saved.",
                       "Each problem is shown next to its field.")
MALFORMED_REQUEST = Notice("We couldn't read that request.", "Nothing has been saved.",
                           "Send a JSON object with the fields described at /api/docs.")
UNSUPPORTED_MEDIA_TYPE = Notice("That request wasn't sent as JSON.", "Nothing has been saved.",
                                "Send the body as a JSON object with the header Content-Type: application/json.")
FORM_EXPIRED = Notice(
    "That form had expired (it was opened before a sign-in or sign-out, or your browser didn't send our cookie), so "
    "we didn't act on it.",
    "Nothing has been saved or changed.",
    "Go back to the page, reload it and send the form once more. If this keeps happening, allow cookies for this "
    "site.",
)
FORM_EXPIRED_TITLE = "Form expired"
NOT_SENT_TITLE = "Not sent"
NOT_ALLOWED_TITLE = "Not allowed"
NOT_ALLOWED = Notice("Your account isn't allowed to open this page.", "Nothing has been changed.",
                     "If you need it, ask whoever runs your support desk to give your account access, then reload.")
REQUEST_UNREADABLE = Notice("We couldn't read that request.", "Nothing has been saved.",
                            "Go back to the page you were on and try again.")
FORM_UNREADABLE = Notice("We couldn't read that form: it was larger than we accept.", "Nothing has been saved.",
                         "Go back to the page and keep each field to what it asks for.")
CSRF_FAILED = Notice("We couldn't confirm this request came from your signed-in page.", "Nothing has been changed.",
                     "Reload the page and try again. API clients send the csrftoken cookie's value in an "
                     "X-CSRFToken header.")
API_NOT_FOUND = Notice("There is no such address in the API.", "Nothing has been saved.",
                       "Check the path (no trailing slash) against /api/docs.")
API_METHOD_NOT_ALLOWED = Notice("That address doesn't take this method.", "Nothing has been saved.",
                                "Check the method against /api/docs.")
BODY_TOO_LARGE = Notice("That request is larger than we accept.", "Nothing has been saved.",
                        "Send only the fields the form asks for.")
UNEXPECTED = Notice("Something went wrong on our side.", "It has been logged and nothing was half-saved.",
                    "Please try again in a moment.")
