"""pyconnectwise, used unchanged, against the ConnectWise sandbox.

pyconnectwise is a public client generated from ConnectWise's own OpenAPI document. If it lists,
filters, pages, reads and patches here exactly as it does against a real site, the sandbox speaks
ConnectWise's dialect and not one the sync made up; its models also bound the fields the sandbox may
serve. The client only speaks https (`https://{manage_url}/...`), so the sandbox app is served here
over TLS with a throwaway certificate that requests is told to trust (REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import datetime as dt
import inspect
import ipaddress
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyconnectwise import ConnectWiseManageAPIClient
from pyconnectwise.models.base.connectwise_model import ConnectWiseModel
from pyconnectwise.models.manage import Addition, Agreement, CatalogItem, Company

from billing_sandbox.common import install_sandbox
from billing_sandbox.connectwise import create_app
from billing_sandbox.server import _Server, bind
from tests.sandbox import make_scenario

N_COMPANIES = 60
# Served although pyconnectwise 0.6.1.2's Agreement model lacks it: the reference lists it, and other
# clients generated from ConnectWise's OpenAPI (Go and TypeScript types) carry it.
NOT_IN_PYCONNECTWISE = {"finance/agreements/1578": {"invoiceProratedAdditionsFlag"}}


def _scenario() -> dict[str, Any]:
    data = make_scenario(1)
    section = data["connectwise"]
    section["companies"] += [
        {"id": 300 + i, "identifier": f"co{i:03d}", "name": f"Company {i:03d}"} for i in range(N_COMPANIES)
    ]
    section["agreements"][0]["additions"].append(
        {"id": 502, "product_id": 752, "quantity": 4, "effectiveDate": None, "additionStatus": "Cancelled"}
    )
    return data


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "billing sandbox")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(host:port, the scenario's connectwise section, the sandbox control) of a TLS sandbox."""
    scenario = _scenario()
    app = create_app(scenario["connectwise"], scenario)
    control = install_sandbox(app, "connectwise")
    cert, key = _certificate(tmp_path_factory.mktemp("tls"))
    sock = bind("127.0.0.1", 0)
    server = _Server(
        uvicorn.Config(app, log_config=None, lifespan="off", ssl_certfile=str(cert), ssl_keyfile=str(key))
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "TLS sandbox did not start"
        time.sleep(0.01)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REQUESTS_CA_BUNDLE", str(cert))
        yield f"127.0.0.1:{sock.getsockname()[1]}", scenario["connectwise"], control
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def client(site: tuple[str, dict[str, Any], Any]) -> ConnectWiseManageAPIClient:
    host, section, _control = site
    # No codebase given: pyconnectwise discovers it through /login/companyinfo, as on a real site.
    return ConnectWiseManageAPIClient(
        section["company_id"], host, section["client_id"], section["public_key"], section["private_key"]
    )


def test_lists_with_conditions_and_paging(client: ConnectWiseManageAPIClient, site) -> None:
    assert client.codebase == "v4_6_release/"
    route = "GET /v4_6_release/apis/3.0/company/companies"
    before = site[2].stats.by_route_status.get(route, {}).get("200", 0)
    first = client.company.companies.paginated(
        1, 25, {"conditions": 'identifier like "co%"', "orderBy": "id asc"}
    )
    assert first.has_next_page and first.last_page == 3
    companies = list(first.all())
    assert [c.id for c in companies] == [300 + i for i in range(N_COMPANIES)]
    assert all(isinstance(c, Company) and c.identifier.startswith("co") for c in companies)
    # 25 + 25 + 10, and no request past the last page
    assert site[2].stats.by_route_status[route]["200"] - before == 3

    agreements = client.finance.agreements.get(params={"conditions": 'agreementStatus = "Active"'})
    assert [a.id for a in agreements] == [1578] and agreements[0].type.name == "Managed Services"
    additions = client.finance.agreements.id(1578).additions.get(
        params={"conditions": 'product/identifier = "HUNTRESS-EDR"', "pageSize": 1000}
    )
    assert [(a.id, a.agreement_status) for a in additions] == [(501, "Active"), (502, "Cancelled")]
    assert additions[1].effective_date is None and additions[0].effective_date.year == 2025


def test_reads_one_addition_and_patches_its_quantity(client: ConnectWiseManageAPIClient, site) -> None:
    endpoint = client.finance.agreements.id(1578).additions.id(501)
    addition = endpoint.get()
    assert isinstance(addition, Addition)
    assert (addition.quantity, addition.bill_customer, addition.agreement_status) == (
        38,
        "Billable",
        "Active",
    )
    assert addition.product.identifier == "HUNTRESS-EDR" and addition.unit_price == 0
    try:
        patched = endpoint.patch(data=[{"op": "replace", "path": "quantity", "value": 41}])
        assert patched.quantity == 41 and endpoint.get().quantity == 41
        audit = site[2].app.state.sandbox.snapshot()["audit_trail"]
        assert [e["text"] for e in audit] == ["Quantity changed from 38 to 41"]
    finally:
        site[2].reset()


def _submodel(annotation: Any) -> type[ConnectWiseModel] | None:
    for arg in typing.get_args(annotation) or (annotation,):
        if inspect.isclass(arg) and issubclass(arg, ConnectWiseModel):
            return arg
        if typing.get_args(arg) and (sub := _submodel(arg)):
            return sub
    return None


def _unknown(record: dict[str, Any], model: type[ConnectWiseModel], prefix: str = "") -> set[str]:
    """Paths of `record` that `model` (and the models of its references) does not have."""
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    out = set()
    for key, value in record.items():
        if key not in fields:
            out.add(prefix + key)
            continue
        sub = _submodel(fields[key].annotation)
        for item in value if isinstance(value, list) else [value]:
            if sub and isinstance(item, dict):
                out |= _unknown(item, sub, f"{prefix}{key}/")
    return out


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("company/companies/250", Company),
        ("procurement/catalog/752", CatalogItem),
        ("finance/agreements/1578", Agreement),
        ("finance/agreements/1578/additions/501", Addition),
        ("finance/agreements/1578/additions/502", Addition),
    ],
)
def test_served_records_carry_only_fields_the_real_api_has(
    client: ConnectWiseManageAPIClient, path: str, model: type[ConnectWiseModel]
) -> None:
    """No invented fields (such as `additionStatus`): every served key is one the models know."""
    record = client._make_request("GET", f"{client._get_url()}/{path}").json()
    assert _unknown(record, model) == NOT_IN_PYCONNECTWISE.get(path, set())
    model.model_validate(record)
