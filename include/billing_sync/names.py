"""The names the package shares: DAG id, connection ids, Variable key, outcomes, reason codes.

One spelling for each (docs/contract.md §1 and §3). Imports nothing, so any module may import it,
`tenants` included, which the DAG files read at every parse.
"""

from __future__ import annotations

DAG_ID = "huntress_connectwise_billing_sync"
# The desk's Apply now (docs/contract.md §1): one per tenant, `<APPLY_DAG_ID>__<id>` with a tenants file.
APPLY_DAG_ID = "huntress_connectwise_billing_apply"
VARIABLE_KEY = "huntress_cw_billing_config"

HUNTRESS_CONN_ID = "huntress_default"
CONNECTWISE_CONN_ID = "connectwise_default"
DB_CONN_ID = "billing_sync_db"
SMTP_CONN_ID = "billing_sync_smtp"
SLACK_CONN_ID = "billing_sync_slack"

# The Airflow asset `record_run` updates on every successful run; its event's extra names the
# organizations the run found new (docs/contract.md §1 "The new-organizations asset").
NEW_ORGANIZATIONS_ASSET = "billing_sync://new_organizations"

# Outcomes reconcile assigns (the push step later turns `change` into updated/planned/failed).
OUTCOMES: dict[str, str] = {
    "change": "the addition's quantity differs from Huntress usage and passes the guard; to be pushed",
    "unchanged": "the addition already carries the Huntress quantity",
    "not_applicable": "zero usage and nothing to update",
    "quarantined": "held for a person; reason_code says why",
    "create": "a person approved creating the missing addition; to be created by the push",
}
# Outcomes the push step writes over `change`; listed so run counts keep a stable shape.
PUSH_OUTCOMES: dict[str, str] = {
    "updated": "the new quantity was written to ConnectWise",
    "planned": "dry run / report only: the change would have been written",
    "failed": "the write did not succeed (see the quarantine row)",
    "created": "an approved new addition was created in ConnectWise",
}
# The contract's outcomes (docs/contract.md §3), in its order: how reports and alerts list them.
CONTRACT_OUTCOMES = ("updated", "unchanged", "planned", "not_applicable", "quarantined", "created")

REASON_CODES: dict[str, str] = {
    "unmapped_organization": "usage for an organization that no rule maps to a company",
    "ambiguous_company_match": (
        "a rule found more than one company, counting those whose identifier or name differs only "
        "in punctuation, spacing or case"
    ),
    "no_live_addition": "mapped company, but no live addition for the product",
    "duplicate_addition": "more than one live addition for the company and product",
    "invalid_usage": "a usage count that is missing, negative, fractional or not a number",
    "change_exceeds_limit": "the change trips the guard (or a drop to zero not allowed)",
    "missing_from_invoice": "a live addition of a mapped product whose company has no line on the invoice",
    "changed_since_read": "the addition's quantity changed in ConnectWise between read and write",
    "push_rejected": "ConnectWise refused the write (4xx), or it still failed after retries",
    # Extension of the contract's nine: the ConnectWise side of the comparison is unusable.
    "invalid_addition": "the single live addition's quantity is missing, negative or fractional",
}

# What a person reads first (issue 20 §3 "plain words first"): the pages and the report show the label,
# then the code small after it; the code stays the data other tools read.
REASON_LABELS: dict[str, str] = {
    "unmapped_organization": "Organization not mapped to a company",
    "ambiguous_company_match": "More than one company could match",
    "no_live_addition": "No addition to bill on",
    "duplicate_addition": "More than one addition for the product",
    "invalid_usage": "Usage count unreadable",
    "change_exceeds_limit": "Change too large (needs approval)",
    "missing_from_invoice": "Billed in ConnectWise, not on the invoice",
    "changed_since_read": "Changed in ConnectWise during the run",
    "push_rejected": "ConnectWise refused the write",
    "invalid_addition": "Addition quantity unreadable",
}


def reason_label(code: str) -> str:
    """The plain words for a reason code; an unknown code reads as itself."""
    return REASON_LABELS.get(code, code)


REASON_HELP: dict[str, str] = {
    "unmapped_organization": "Add a billing_org_map row for the organization, or give the ConnectWise "
    "company an identifier equal to the organization's key.",
    "ambiguous_company_match": "Add a billing_org_map row naming the right company, or make the "
    "identifiers/names of the candidate companies distinct.",
    "no_live_addition": "Approve creating the addition on one of the company's agreements (the next run "
    "creates it), add it in ConnectWise yourself, or map the organization to the company that has it.",
    "duplicate_addition": "Cancel or end all but one of the company's live additions for the product, or "
    "restrict agreement_types so only one agreement counts.",
    "invalid_usage": "Check the organization's usage in Huntress; the key syncs on the next run once the "
    "invoice line carries a whole, non-negative count.",
    "change_exceeds_limit": "Confirm the change is real, then approve exactly this change and re-run, "
    "update the addition by hand, or raise max_change_units / max_change_ratio (or set "
    "allow_drop_to_zero) and re-run.",
    "missing_from_invoice": "Confirm the company left Huntress and end the addition, or map its Huntress "
    "organization to the company.",
    "changed_since_read": "Someone edited the addition during the run; re-run the sync to compare again.",
    "push_rejected": "Read the ConnectWise error in the detail (permissions, closed agreement), fix it and "
    "re-run.",
    "invalid_addition": "Fix the addition's quantity in ConnectWise to a whole, non-negative number and "
    "re-run.",
}

_REASON_RANK = {code: i for i, code in enumerate(REASON_CODES)}


def reason_rank(code: str) -> int:
    """Position of a reason code in the contract's order (REASON_CODES); unknown codes come last."""
    return _REASON_RANK.get(code, len(_REASON_RANK))
