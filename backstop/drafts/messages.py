"""Every sentence the drafts capability says: the editor's one status line, the restore prompt, a conflict between
two tabs, a form the server did not take, and the API's refusals.

The page's script gets the browser-side ones through ``browser_texts()`` (rendered into the page as JSON), so no
sentence lives in the JavaScript.
"""

from __future__ import annotations

from backstop.lib.site_messages import Notice

# --- The status line under each editor ------------------------------------------------------------

SAVED = "Saved"
SAVING = "Saving..."
SAVED_ON_DEVICE = "Saved on this device; we can't reach the server, keep typing"
NOT_SAVED = "Not saved: {why}"
WHY_REFUSED = "the server refused it ({code}). Your text is still on this device"
WHY_NO_STORAGE = "this browser keeps nothing on this device (private mode?), so copy your text somewhere safe"

# --- After a reload, a crash or on another device -----------------------------------------------

RESTORE_PROMPT = "You have text you haven't sent here, from {age} ({source})."
RESTORE = "Restore it"
DISCARD = "Discard it"
SOURCE_DEVICE = "saved on this device"
SOURCE_SERVER = "saved on the server, from another tab or device"
RESTORED = "Restored what you typed before the page reloaded."
AGE_NOW = "a moment ago"
AGE_MINUTES = "{n} minute(s) ago"
AGE_HOURS = "{n} hour(s) ago"
AGE_DAYS = "{n} day(s) ago"

# --- Two tabs or devices editing one draft --------------------------------------------------------

CONFLICT = Notice(
    "This text was also changed in another tab or on another device ({age}).",
    "We kept both versions; nothing has been overwritten.",
    "Choose the one to keep (you can copy from either first).",
)
CONFLICT_MINE = "Yours (this tab)"
CONFLICT_THEIRS = "The other version"
KEEP_MINE = "Keep mine"
USE_THEIRS = "Use the other version"

# --- Sending the form ----------------------------------------------------------------------------

SENDING = "Sending..."
NOT_SENT = Notice(
    "Not sent: {why}.",
    "Your text is kept here and on this device.",
    "We can send it for you, once, as soon as the server answers again.",
)
WHY_UNREACHABLE = "we can't reach the server"
WHY_SERVER_ERROR = "the server had a problem ({status})"
SEND_WHEN_BACK = "Send when the server is back"
WAITING_TO_SEND = Notice(
    "Not sent yet: we're waiting for the server.",
    "We'll send it once, as soon as it answers; the text can't be edited until then.",
    "Keep this tab open.",
)

# --- The API ---------------------------------------------------------------------------------------

NO_DRAFT = Notice("There is no draft here.", "", "")
DRAFT_CONFLICT = Notice(
    "This draft was changed in another tab or on another device since yours was loaded.",
    "Nothing was overwritten.",
    "The other version is in `draft`; save again with its version to keep yours.",
)
NOT_YOUR_PAGE = Notice(
    "You're signed out, or signed in as someone else, since this page was opened.",
    "Your text is kept on this device and was not saved to anyone's account.",
    "Sign in again, then reload this page.",
)
FIELD_SURFACE = "A surface is a short name such as contact or desk-reply:42 (letters, digits, - _ : only)."
FIELD_FIELDS = "Send at most {count} fields, each named with letters, digits, - _ or . and holding text."
FIELD_TOO_LONG = "A draft holds at most {limit} characters in all."
FIELD_CONTROL_CHARACTERS = "Text can't hold control characters."
FIELD_BASE_VERSION = "The version your text was typed on: 0 for a new draft."
TOO_MANY_DRAFTS = "You have {limit} drafts already: send or discard some first."


def browser_texts() -> dict[str, str]:
    """What the page's script shows, by the names it looks them up with."""
    return {
        "saved": SAVED, "saving": SAVING, "savedOnDevice": SAVED_ON_DEVICE, "notSaved": NOT_SAVED,
        "whyRefused": WHY_REFUSED, "whyNoStorage": WHY_NO_STORAGE,
        "restorePrompt": RESTORE_PROMPT, "restore": RESTORE, "discard": DISCARD, "sourceDevice": SOURCE_DEVICE,
        "sourceServer": SOURCE_SERVER, "restored": RESTORED, "ageNow": AGE_NOW, "ageMinutes": AGE_MINUTES,
        "ageHours": AGE_HOURS, "ageDays": AGE_DAYS,
        "conflict": CONFLICT.text, "conflictMine": CONFLICT_MINE, "conflictTheirs": CONFLICT_THEIRS,
        "keepMine": KEEP_MINE, "useTheirs": USE_THEIRS,
        "sending": SENDING, "notSent": NOT_SENT.text, "whyUnreachable": WHY_UNREACHABLE,
        "whyServerError": WHY_SERVER_ERROR, "sendWhenBack": SEND_WHEN_BACK, "waitingToSend": WAITING_TO_SEND.text,
    }
