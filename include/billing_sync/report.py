"""What a run did, for people: the text summary (CLI, notifications)."""

from __future__ import annotations

from typing import Any

from . import store


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_summary_text(eng, billing_date: str, run_id: str | None = None) -> str:
    """The newest run of `billing_date` (or `run_id`): outcomes, reasons, changes, checks."""
    runs = [r for r in store.list_runs(eng, limit=500) if str(r["billing_date"]) == billing_date]
    run = store.get_run(eng, run_id) if run_id else (runs[0] if runs else None)
    if not run:
        return f"no run recorded for billing date {billing_date}"
    counts = run.get("counts") or {}
    out = [f"Run {run['run_id']}  billing date {run['billing_date']}  invoice {run['invoice_id']}  "
           f"mode {run['mode']}  status {run['status']}", ""]
    out.append(_table(["outcome / reason_code", "keys"],
                      [[k, v] for k, v in counts.items() if v and k != "total"] + [["total", counts.get("total")]]))
    changes = [c for c in store.changes_for_run(eng, run["run_id"]) if c["action"] != "unchanged"]
    if changes:
        out += ["", "Changes:", _table(
            ["company", "product", "addition", "previous", "new", "action"],
            [[c["cw_company_id"], c["product"], c["addition_id"], _num(c["previous_quantity"]),
              _num(c["new_quantity"]), c["action"]] for c in changes])]
    held = [q for q in store.list_quarantine(eng, run_id=run["run_id"], limit=None) if q["status"] == "open"]
    if held:
        out += ["", "Quarantine (open):", _table(
            ["reason_code", "key", "organization", "detail"],
            [[q["reason_code"], q["sync_key"], (q["huntress_organization_name"] or "")[:30],
              (q["detail"] or "")[:90]] for q in held])]
    mismatches = (run.get("checks") or {}).get("mismatches") or []
    out += ["", "Totals check: " + ("Huntress and ConnectWise agree" if not mismatches else "; ".join(mismatches))]
    if run.get("report_path"):
        out.append(f"Report: {run['report_path']}")
    return "\n".join(out)


def _num(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v
