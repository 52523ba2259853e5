"""Issue 11 §2, §5 at the level of the app: the overrides page (list, add, retire; changing what a
customer is billed takes OverridesDep and records the user's name and id), and the money the runs pages
lead with."""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import quote

from billing_sync import store
from tests.helpers.review_app import RUN
from tests.helpers.review_roles import EDITOR, MAPPER, VIEWER, Client

ADD = {"company_id": "10", "product": "edr", "rule": "minimum", "quantity": "25", "note": "contract floor"}


def page(roles_site: Client, path: str, headers: dict[str, str] = MAPPER) -> str:  # noqa: F811
    response = roles_site.client.get(f"/billing-review{path}", headers=headers)
    assert response.status_code == 200, response.text
    return response.text


def test_a_mapper_adds_an_override_recorded_by_name_and_id(roles_site: Client) -> None:  # noqa: F811
    done = roles_site.post("/overrides", ADD, MAPPER)
    assert done.status_code == 303
    [row] = store.list_overrides(roles_site.engine, tenant="default")
    assert (
        done.headers["location"]
        == f"/billing-review/overrides?done=override_added&id={row['id']}#override-{row['id']}"
    )
    assert (row["cw_company_id"], row["product"], row["rule"], row["quantity"], row["note"]) == (
        10,
        "edr",
        "minimum",
        25.0,
        "contract floor",
    )
    assert (row["created_by"], row["created_by_id"], row["tenant"]) == ("Max Mapper", "12", "default")
    html = page(roles_site, f"/overrides?done=override_added&id={row['id']}")
    assert f"Override {row['id']} added" in html
    active = html[html.index('data-testid="active-overrides"') :]
    assert "Acme Corp" in active and "contract floor" in active and "(id 12)" in active


def test_retiring_keeps_the_row_and_who_retired_it(roles_site: Client) -> None:  # noqa: F811
    roles_site.post("/overrides", ADD, MAPPER)
    [row] = store.list_overrides(roles_site.engine, tenant="default")
    done = roles_site.post(f"/overrides/{row['id']}/retire", {}, MAPPER)
    assert "done=override_retired" in done.headers["location"]
    assert store.list_overrides(roles_site.engine, tenant="default") == []
    [retired] = store.list_overrides(roles_site.engine, active=False, tenant="default")
    assert retired["note"].startswith("contract floor; retired by Max Mapper (id 12) ")
    html = page(roles_site, "/overrides")
    assert 'data-testid="retired-overrides"' in html and "No active override" in html
    # Retired, the company and product take a new rule.
    assert (
        "done=override_added"
        in roles_site.post("/overrides", {**ADD, "rule": "exclude", "quantity": ""}, MAPPER).headers[
            "location"
        ]
    )
    assert (
        "error=override_not_found" in roles_site.post("/overrides/999/retire", {}, MAPPER).headers["location"]
    )


def test_one_active_override_per_company_and_product(roles_site: Client) -> None:  # noqa: F811
    roles_site.post("/overrides", ADD, MAPPER)
    again = roles_site.post("/overrides", {**ADD, "rule": "fixed"}, MAPPER)
    assert "error=override_conflict" in again.headers["location"]
    assert "retire it first" in page(roles_site, "/overrides?error=override_conflict")
    assert len(store.list_overrides(roles_site.engine, tenant="default")) == 1


def test_what_an_override_must_say(roles_site: Client) -> None:  # noqa: F811
    cases = {
        "override_bad_company": {"company_id": "acme"},
        "override_unknown_company": {"company_id": "99"},
        "override_bad_product": {"product": "antivirus"},
        "override_bad_rule": {"rule": "maximum"},
        "override_bad_quantity": {"quantity": "2.5"},
    }
    # refused: the page again (400), the message beside the field it is about (issue 20 §3)
    for code, change in cases.items():
        answer = roles_site.post("/overrides", {**ADD, **change}, MAPPER)
        field = code.split("_")[-1]
        assert answer.status_code == 400 and f'data-testid="error-{field}"' in answer.text, code
    for rule, quantity in [("minimum", ""), ("fixed", "-1"), ("exclude", "3")]:
        answer = roles_site.post("/overrides", {**ADD, "rule": rule, "quantity": quantity}, MAPPER)
        assert answer.status_code == 400 and 'data-testid="error-quantity"' in answer.text, rule
    assert store.list_overrides(roles_site.engine, active=None, tenant="default") == []


def test_an_override_is_for_a_company_picked_by_name(roles_site: Client) -> None:  # noqa: F811
    """Issue 20 §3: the company is typed by name (or picked, "Name #id"), never a raw id only; the
    server still checks it is a company of the tenant's newest run."""
    form = {k: v for k, v in ADD.items() if k != "company_id"}
    for typed in ("acme corp", "Acme Corp #10"):
        answer = roles_site.post("/overrides", {**form, "company": typed}, MAPPER)
        assert "done=override_added" in answer.headers["location"], typed
        [row] = store.list_overrides(roles_site.engine, tenant="default")
        assert row["cw_company_id"] == 10
        store.retire_override(roles_site.engine, row["id"], tenant="default", user="t", user_id="t")
    html = page(roles_site, "/overrides")
    assert 'data-fill data-form="add-override"' in html and 'name="company"' in html
    # the type-ahead's matches for this form pick a company (not map an organization)
    matches = page(roles_site, "/mapping/companies?q=acme&form=add-override")
    assert 'form="add-override" name="company_id" value="10"' in matches and "Use this company" in matches


def test_a_bad_override_value_is_shown_beside_its_field_with_the_form_kept(roles_site: Client) -> None:  # noqa: F811
    form = {k: v for k, v in ADD.items() if k != "company_id"}
    cases = {
        "company": ({"company": "Acme Widgets <b>"}, "No ConnectWise company of the newest run is"),
        "company-twin": ({"company": "twin"}, "Several companies are named"),
        "company-arabic": ({"company": "\u0661\u0662"}, "No ConnectWise company of the newest run is"),
        "company-unknown-id": ({"company": "99"}, "No ConnectWise company of the newest run is"),
        "quantity": ({"company": "Acme Corp", "quantity": "2.5"}, "whole number of units"),
    }
    for case, (change, said) in cases.items():
        answer = roles_site.post("/overrides", {**form, **change}, MAPPER)
        assert answer.status_code == 400, case
        html = answer.text
        assert "<!doctype html>" in html.lower() and 'data-testid="add-override"' in html, (
            case
        )  # the app's page
        field = case.split("-")[0]
        error = re.search(rf'data-testid="error-{field}"[^>]*>([^<]*(?:<[^/][^<]*)*)</', html)
        assert error is not None and said in error.group(1), (case, html[-3000:])
        typed = change.get("company", "")
        assert f'name="company" value="{typed.replace("<", "&lt;").replace(">", "&gt;")}"' in html, case
        assert (
            'value="contract floor"' in html
            and "<b>" not in html.split('data-testid="add-override"')[1][:4000]
        )
    # the matches of a name many companies share are offered beside the field
    answer = roles_site.post("/overrides", {**form, "company": "twin"}, MAPPER)
    assert 'name="company_id" value="20"' in answer.text and 'name="company_id" value="21"' in answer.text
    assert store.list_overrides(roles_site.engine, active=None, tenant="default") == []


def test_viewers_and_editors_may_read_but_not_change_overrides(roles_site: Client) -> None:  # noqa: F811
    assert "Add an override" in page(roles_site, "/overrides", VIEWER)
    for who in (VIEWER, EDITOR):
        assert roles_site.post("/overrides", ADD, who).status_code == 403
    row = store.add_override(
        roles_site.engine, cw_company_id=10, product="edr", rule="exclude", user="Jane", tenant="default"
    )
    for who in (VIEWER, EDITOR):
        assert roles_site.post(f"/overrides/{row['id']}/retire", {}, who).status_code == 403
    assert [r["id"] for r in store.list_overrides(roles_site.engine, tenant="default")] == [row["id"]]
    # And the form needs its CSRF token, like every other.
    bare = roles_site.client.post(
        "/billing-review/overrides", data=ADD, headers=MAPPER, follow_redirects=False
    )
    assert bare.status_code == 403
    assert len(store.list_overrides(roles_site.engine, tenant="default")) == 1


def test_the_overrides_page_escapes_what_people_typed(roles_site: Client) -> None:  # noqa: F811
    roles_site.post("/overrides", {**ADD, "note": '<script>alert("x")</script>'}, MAPPER)
    html = page(roles_site, "/overrides")
    assert "<script>alert" not in html and "&lt;script&gt;" in html


MONEY = {
    "products": {
        "edr": {
            "huntress_units": 52,
            "connectwise_units_before": 45.0,
            "connectwise_units_after": 47.0,
            "huntress_amount": "338",
            "connectwise_amount_before": "292.5",
            "connectwise_amount_after": "305.5",
            "difference": "-32.5",
            "recovered": "13",
            "planned": "0",
            "unpriced_units": "0",
        }
    },
    "recovered": "13",
    "planned": "0",
    "huntress_amount": "338",
    "connectwise_amount_after": "305.5",
    "held": {"reasons": [], "rows": 0, "priced_rows": 0, "amount": "0"},
}


def test_the_runs_pages_lead_with_the_money(roles_site: Client) -> None:  # noqa: F811
    run = store.get_run(roles_site.engine, RUN, tenant="default")
    store.finish_run(
        roles_site.engine,
        RUN,
        "success",
        run["counts"],
        {"mismatches": [], "money": MONEY},
        run["report_path"],
        tenant="default",
    )
    with roles_site.engine.begin() as conn:  # what is held now: the open rows' amounts (row 2: 1234.5)
        conn.execute(
            store.quarantine.update()
            .where(store.quarantine.c.id == 2)
            .values(amount_at_stake=Decimal("1234.5"))
        )

    runs = page(roles_site, "/runs", VIEWER)
    assert runs.index('data-testid="money"') < runs.index('data-testid="runs"')
    money = runs[runs.index('data-testid="money"') :]
    assert re.search(r'data-testid="recovered">\+13\.00<', money)
    assert re.search(r'data-testid="held">1,234\.50<', money)
    assert "338.00" in money and "305.50" in money and "−32.50" in money
    assert "change_exceeds_limit" in money[: money.index("</section>")]
    assert ">+13.00<" in runs[runs.index('data-testid="runs"') :]  # the run's column

    one = page(roles_site, f"/runs/{quote(RUN, safe='')}", VIEWER)
    assert one.index('data-testid="money"') < one.index("<h2>Outcomes</h2>")
    assert re.search(r'data-testid="held">1,234\.50<', one)


def test_runs_without_money_show_no_money(roles_site: Client) -> None:  # noqa: F811
    assert 'data-testid="money"' not in page(roles_site, "/runs", VIEWER)
    assert 'data-testid="money"' not in page(roles_site, f"/runs/{quote(RUN, safe='')}", VIEWER)


def test_the_queue_shows_and_sorts_by_amount_at_stake(roles_site: Client) -> None:  # noqa: F811
    with roles_site.engine.begin() as conn:  # row 1: organization:2:edr, row 2: company:10:sat (seen last)
        conn.execute(
            store.quarantine.update()
            .where(store.quarantine.c.id == 1)
            .values(amount_at_stake=Decimal("2500"))
        )
        conn.execute(
            store.quarantine.update()
            .where(store.quarantine.c.id == 2)
            .values(amount_at_stake=Decimal("12.5"))
        )
    for view in ("rows", "groups"):
        newest = page(roles_site, f"/quarantine?view={view}", VIEWER)
        by_amount = page(roles_site, f"/quarantine?view={view}&order=amount", VIEWER)
        assert by_amount.index('data-row-id="1"') < by_amount.index('data-row-id="2"'), view
        assert newest.index('data-row-id="2"') < newest.index('data-row-id="1"'), view
        assert "2,500.00 at stake" in by_amount and "12.50 at stake" in by_amount
        held = by_amount[by_amount.index('data-testid="held"') :]
        assert "<strong>2,512.50</strong>" in held and "Organization not mapped to a company 2,500.00" in held
    assert 'value="amount" selected' in page(roles_site, "/quarantine?order=amount", VIEWER)
    assert roles_site.client.get("/billing-review/quarantine?order=price", headers=VIEWER).status_code == 400
