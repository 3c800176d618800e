from __future__ import annotations

import pytest

from backstop.lib.email_identity import domain_key, email_key, normalise_email


def test_it_gives_a_unicode_domain_and_its_ascii_form_one_key() -> None:
    assert email_key("anna@bücher.example") == email_key("anna@xn--bcher-kva.example") == "anna@xn--bcher-kva.example"


def test_it_keeps_the_sharp_s_so_strasse_and_strasse_with_eszett_are_two_customers() -> None:
    # IDNA 2008 non-transitional: ß is a letter of its own, not "ss" (IDNA 2003 and case-folding both map it away).
    assert email_key("post@straße.de") == "post@xn--strae-oqa.de"
    assert email_key("post@strasse.de") == "post@strasse.de"
    assert email_key("post@straße.de") != email_key("post@strasse.de")


def test_it_folds_the_case_of_both_parts_as_before() -> None:
    assert email_key("Anna.Smith@Example.COM") == "anna.smith@example.com"
    assert email_key("ANNA@BÜCHER.example") == "anna@xn--bcher-kva.example"
    # The local part is case-folded as it always was: a server that told "ß" from "ss" there is vanishingly rare.
    assert email_key("Straße@example.com") == "strasse@example.com"


def test_it_normalises_compatibility_forms_and_spaces_before_the_key() -> None:
    fullwidth = "\uff21\uff2e\uff2e\uff21@\uff42\u00fccher\uff0eexample"  # full-width letters and dot
    assert email_key(f"  {fullwidth} ") == "anna@xn--bcher-kva.example"


def test_it_leaves_ascii_domains_as_lower_case_text_even_where_idna_would_refuse_them() -> None:
    # An underscore, an empty label: not for IDNA to judge here (validation does), and their keys stay as before.
    assert domain_key("Mail_Relay.Example.com") == "mail_relay.example.com"
    assert email_key("a@b..c") == "a@b..c"


@pytest.mark.parametrize("domain", ["\u00df" * 70 + ".de", "bad\u2665label.example"])
def test_it_gives_a_domain_idna_refuses_a_key_without_raising(domain: str) -> None:
    # A label too long, a symbol IDNA 2008 does not allow: case-folded as before, so length checks still see it.
    assert domain_key(domain) == domain.casefold()


def test_it_keeps_an_address_without_an_at_sign_as_one_folded_text() -> None:
    assert email_key("Not An Address") == "not an address"


def test_it_keeps_the_local_part_as_typed_for_display() -> None:
    assert normalise_email(" Anna@Bücher.Example ") == "Anna@bücher.example"
