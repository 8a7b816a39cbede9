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

# Matched against whole underscore-separated words of a column name, case-insensitively.
_PERSONAL = re.compile(
    r"(?:^|_)(?:e_?mail|email_address|phone|phone_number|mobile|fax|msisdn|"
    r"first_?name|last_?name|full_?name|given_?name|family_?name|surname|middle_?name|"
    r"customer_name|contact_name|name|"
    r"birth_?date|date_of_birth|dob|birthday|gender|"
    r"ssn|social_security|passport|national_id|tax_id|vat_id|"
    r"iban|bic|swift|account_number|card|card_number|pan|cvv|cvc|"
    r"password|passwd|secret|token|api_key|"
    r"address|street|address_line\d*|postcode|postal_code|zip|zip_code|"
    r"ip|ip_address|ipaddr|user_agent|latitude|longitude|lat|lon|lng)(?:$|_)",
    re.IGNORECASE,
)


def looks_personal(column: str) -> bool:
    """True when a column's name suggests personal data (``email``, ``billing_address``, ``card_number``)."""
    return bool(_PERSONAL.search(column))


def default_key(columns: list[str], table: str) -> str | None:
    """The column that identifies a row, by name: ``id``, else ``<table>_id`` (``orders`` -> ``order_id``)."""
    by_lower = {c.lower(): c for c in columns}
    stem = table.rsplit(".", 1)[-1].strip('"`[]').lower()
    for name in ("id", f"{stem}_id", f"{stem.removesuffix('s')}_id", f"{stem.removesuffix('es')}_id"):
        if name in by_lower:
            return by_lower[name]
    return None
