"""What a violating-row sample shows when the spec does not say (no ``sample_columns``).

Samples go to XCom, the task log, Slack and tickets, so the defaults keep personal data out and a key in:

* row-level checks on a table show the check's own columns, led by a key to find the row: the table's
  ``sample_columns`` or, when it names none, a column called ``id`` / ``<table>_id`` if the table has one;
* a ``sql`` check shows the columns its query selects, except those whose names look like personal data
  (e-mail, phone, names, addresses, birth dates, identity and payment numbers, secrets): they are left out
  and the check's message names them. Listing columns in ``sample_columns`` shows exactly those.
"""

from __future__ import annotations

import re

# Matched against the name's last words (``customer_email``, ``billing_address``, ``card_number``) once it is
# written in snake case: ``userEmail`` and ``E-Mail`` too. A name that only starts with such a word
# (``token_count``, ``card_type``, ``ip_count``) is a fact about the data, not the data.
_PERSONAL = re.compile(
    r"(?:^|_)(?:e_?mail|mail|email_address|mail_address|phone|phone_number|phone_no|mobile|mobile_number|fax|"
    r"msisdn|first_?name|last_?name|full_?name|given_?name|family_?name|surname|middle_?name|name|"
    r"birth_?date|date_of_birth|dob|birthday|gender|"
    r"ssn|social_security_number|passport|passport_number|national_id|tax_id|vat_id|"
    r"iban|bic|swift|account_number|card|card_number|card_no|pan|cvv|cvc|"
    r"password|passwd|secret|token|api_key|"
    r"address|addr|street|address_line\d*|postcode|postal_code|zip|zip_code|"
    r"ip|ip_address|ipaddr|ip_addr|user_agent|latitude|longitude|lat|lon|lng)$",
    re.IGNORECASE,
)


def _snake(name: str) -> str:
    """``userEmail`` -> ``user_email``, ``E-Mail`` -> ``e_mail``, ``IPAddress`` -> ``ip_address``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name.strip())
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower()


def looks_personal(column: str) -> bool:
    """True when a column's name suggests personal data (``email``, ``billing_address``, ``card_number``)."""
    return bool(_PERSONAL.search(_snake(column)))


def default_key(columns: list[str], table: str) -> str | None:
    """The column that identifies a row, by name: ``id``, else ``<table>_id`` (``orders`` -> ``order_id``)."""
    by_lower = {c.lower(): c for c in columns}
    stem = table.rsplit(".", 1)[-1].strip('"`[]').lower()
    for name in ("id", f"{stem}_id", f"{stem.removesuffix('s')}_id", f"{stem.removesuffix('es')}_id"):
        if name in by_lower:
            return by_lower[name]
    return None
