"""Every sentence the workspace's notes pages say."""

from __future__ import annotations

from backstop.lib.site_messages import Notice

FIELD_TITLE = "Give the note a title."
FIELD_TOO_LONG = "Keep this to {limit} characters."
FIELD_CONTROL_CHARACTERS = "Text can't hold control characters."
NOTE_CREATED = "Note created."
NOTE_SAVED = "Note saved."
NOTE_CHANGED = Notice(
    "This note was changed in another tab or on another device since you opened it.",
    "Your text has not been saved, and theirs has not been overwritten: yours is in the form, theirs is below.",
    "Merge what you want into the form and save again.",
)
NO_NOTES = "No notes yet."
