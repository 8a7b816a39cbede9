"""The CRM datasets a sync writes to, as lineage names them and as Asset URIs (hubspot://, salesforce://,
zendesk:// registered by the provider): the same name both ways, from the connections' own fields."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from airflow_opsflow.destinations import HubSpotObjects, SalesforceObjects, ZendeskObjects
from airflow_opsflow.lineage import convert_asset_to_openlineage, destination_dataset, sanitize_uri


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    conns = {
        "hubspot_portal": {"conn_type": "opsflow_hubspot", "host": "https://api.hubapi.com", "password": "t",
                           "extra": {"portal_id": "24681357"}},
        "hubspot_plain": {"conn_type": "opsflow_hubspot", "host": "api.hubapi.com", "password": "t"},
        "sf": {"conn_type": "salesforce", "login": "u", "password": "p",
               "extra": {"instance_url": "https://Acme.my.salesforce.com/"}},
        "sf_sandbox": {"conn_type": "salesforce", "login": "u", "password": "p", "extra": {"domain": "test"}},
        "zd": {"conn_type": "zendesk", "host": "acme.zendesk.com", "login": "a@acme.com", "password": "t"},
    }
    for name, conn in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(conn))


@pytest.mark.parametrize(("destination", "namespace", "name"), [
    (HubSpotObjects("companies", id_property="account_key", hubspot_conn_id="hubspot_portal"),
     "hubspot://24681357", "companies"),
    (HubSpotObjects("contacts", id_property="email", hubspot_conn_id="hubspot_plain"),
     "hubspot://api.hubapi.com", "contacts"),
    (SalesforceObjects("Account", external_id_field="Opsflow_Id__c", conn_id="sf"),
     "salesforce://acme.my.salesforce.com", "Account"),
    (SalesforceObjects("Contact", external_id_field="Email", conn_id="sf_sandbox"),
     "salesforce://test.salesforce.com", "Contact"),
    (ZendeskObjects("organizations", conn_id="zd"), "zendesk://acme", "organizations"),
])
def test_a_destination_and_its_asset_name_the_same_dataset(destination: object, namespace: str, name: str) -> None:
    from airflow.sdk import Asset

    dataset = destination_dataset(destination)
    assert (dataset.namespace, dataset.name) == (namespace, name)
    asset = Asset(uri=f"{namespace}/{name}")
    back = convert_asset_to_openlineage(asset, None)
    assert (back.namespace, back.name) == (namespace, name)


def test_asset_uris_are_normalised_and_checked() -> None:
    assert sanitize_uri(urlsplit("hubspot://App.HubSpot.com/companies/?x=1")).geturl() == \
        "hubspot://app.hubspot.com/companies"
    with pytest.raises(ValueError, match="must contain the account"):
        sanitize_uri(urlsplit("zendesk:///tickets"))
    with pytest.raises(ValueError, match="exactly one object"):
        sanitize_uri(urlsplit("salesforce://acme.my.salesforce.com/Account/Contact"))


def test_airflow_applies_the_scheme_handler_to_assets() -> None:
    """The provider's ``asset-uris`` entry: Airflow itself normalises and checks these Assets when a DAG
    declares them (so a typo fails at parse time, naming the expected shape)."""
    from airflow.sdk import Asset

    assert Asset(uri="hubspot://App.HubSpot.com/companies").uri == "hubspot://app.hubspot.com/companies"
    with pytest.raises(ValueError, match="exactly one object"):
        Asset(uri="hubspot://acme/companies/extra")
