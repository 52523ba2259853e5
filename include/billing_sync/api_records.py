"""The records Huntress and ConnectWise answer (and the bodies we send), as TypedDicts.

Each is shaped after the vendor's own definition (`/work/shared/reference/openapi/`, held by
tests/contract), with only the fields the sync reads or writes. An answer is checked to be a JSON
object and nothing more before the code reads it, so every field may be absent (`total=False`: a
`fields=` list trims answers, null properties are left out) and a field the vendor types as a number
or a reference is `object` here: the readers (frames, push, preflight) check each value before they
trust it, as they always did, and mypy holds them to it.

Imports nothing: the clients, frames and the checks that read the records all sit above it.
"""

from __future__ import annotations

from typing import TypedDict

# -- Huntress (huntress-openapi.json) --------------------------------------------------------------


class Invoice(TypedDict, total=False):
    """`Invoice`: one of `/v1/invoices` or `/v1/reseller/invoices` (status decides if it bills)."""

    id: object  # integer
    created_at: object  # date-time text
    status: object  # open | paid | partial_refund | processing | failed | voided | full_refund | draft
    has_usage: object  # boolean
    quantity: object  # integer
    amount: object  # integer
    plan: object  # text


class ActualUsage(TypedDict, total=False):
    """An invoice line's `actual_usage`: units used per Huntress product."""

    edr: object
    itdr: object
    ispm: object
    sat: object
    siem: object


class UsageLine(TypedDict, total=False):
    """`OrganizationUsageLineItem`, or one shaped like it from an organization's `actual_usages`.

    `account` and `organization` are objects by the definition (`{id, name}`); `actual_usage` is an
    `ActualUsage` on a sound line, anything else on a broken one (frames.usage_frame reads both)."""

    id: object  # integer; None on a line made from an organization's actual_usages
    account: object  # {id, name, subdomain}
    organization: object  # {id, name}
    actual_usage: object


class Organization(TypedDict, total=False):
    """`Organization` of `/v1/organizations` or `/v1/accounts/{account_id}/organizations`."""

    id: object  # integer
    name: object  # text
    key: object  # text, unique within its account only
    account_id: object  # integer; set to the account read when Huntress leaves it out
    # Ours, never Huntress's (text): why the organization is known only as its invoice lines name
    # it (its account answered 403: huntress.refused_organizations). An answer could carry the key
    # too, so it is read as any other field.
    unreadable: object


class OrganizationUsage(Organization, total=False):
    """`OrganizationWithActualProductUsages` (`/v1/organizations/{id}`): usage as of now."""

    actual_usages: object  # typed `string` by the definition, an object in its example: both read


class Account(TypedDict, total=False):
    """`Account` (`/v1/account`): the credentials' own account, named by the checks."""

    id: object
    name: object
    subdomain: object


# -- ConnectWise Manage (connectwise-manage-2026.4-get.json, 2025.16 addition writes) -------------


class Company(TypedDict, total=False):
    """`Company` as `connectwise.COMPANY_FIELDS` reads it."""

    id: object  # integer
    identifier: object
    name: object
    deletedFlag: object  # boolean


class Agreement(TypedDict, total=False):
    """`Agreement` as `connectwise.AGREEMENT_FIELDS` reads it."""

    id: object  # integer
    name: object
    type: object  # AgreementTypeReference {id, name}
    company: object  # CompanyReference {id, identifier, name}
    agreementStatus: object  # Active | Cancelled | Expired | Inactive
    cancelledFlag: object  # boolean
    startDate: object  # date-time text
    endDate: object  # date-time text


class Addition(TypedDict, total=False):
    """`Addition` (AgreementAddition) as `connectwise.ADDITION_FIELDS` reads it.

    Its own status is `agreementStatus`: ConnectWise has no `additionStatus`."""

    id: object  # integer
    agreementId: object  # integer; set to the agreement read when `fields` trims it
    product: object  # IvItemReference {id, identifier}
    quantity: object  # number
    unitPrice: object  # number
    lessIncluded: object  # number
    effectiveDate: object  # date-time text
    cancelledDate: object  # date-time text
    agreementStatus: object  # Active | Cancelled | Expired | Inactive


class CatalogItem(TypedDict, total=False):
    """`CatalogItem` (`/procurement/catalog`) as `connectwise.CATALOG_FIELDS` reads it."""

    id: object  # integer
    identifier: object
    description: object
    inactiveFlag: object  # boolean
    price: object  # number: the default unit price


class AgreementType(TypedDict, total=False):
    """`AgreementType` (`/finance/agreements/types`)."""

    id: object
    name: object
    inactiveFlag: object  # boolean


class SystemInfo(TypedDict, total=False):
    """`Info` (`/system/info`, connectwise-2025.1-go-models.json): the Test button names the version."""

    version: object


class SecurityLevels(TypedDict, total=False):
    """One row of `/system/mySecurity`: the API member's own levels on one module function.

    No vendored definition has it; the names are those the public clients read (the sandbox's
    security.py names them). Levels read as All, None, Customize or My."""

    moduleIdentifier: object
    moduleName: object
    moduleFunctionName: object
    inquireLevel: object
    editLevel: object
    addLevel: object
    deleteLevel: object


class ItemReference(TypedDict):
    """`IvItemReference` as a new addition names its product: by identifier."""

    identifier: str


class NewAddition(TypedDict):
    """The body of `POST /finance/agreements/{id}/additions`: `product` and `billCustomer` are the
    definition's required fields, `effectiveDate` midnight UTC."""

    product: ItemReference
    quantity: int
    effectiveDate: str
    billCustomer: str  # Billable | DoNotBill | NoCharge


class PatchOperation(TypedDict):
    """`PatchOperation`: one element of a PATCH body (its `value` is any JSON; ours a quantity)."""

    op: str
    path: str
    value: int
