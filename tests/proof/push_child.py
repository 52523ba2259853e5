"""One push batch in a process of its own, as an Airflow task process runs it: the crash test
SIGKILLs this process part-way through.

    python tests/proof/push_child.py REF_JSON_FILE DB_URL BATCH RECORD_DELAY_S

Connections come from AIRFLOW_CONN_* in the environment. RECORD_DELAY_S slows every ledger write
(a slow database), which widens the window between a write ConnectWise has served and its ledger
row: the window a crash must not turn into a double write or a wrong ledger.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(ref_file: str, db_url: str, batch: str, record_delay_s: str) -> int:
    from billing_sync import steps, store
    from billing_sync.connectwise import ConnectWiseClient

    delay = float(record_delay_s)
    record_changes = store.RunStore.record_changes  # the push records through the run's handle

    def slow_record_changes(self: store.RunStore, rows: object) -> int:
        time.sleep(delay)
        return record_changes(self, rows)  # type: ignore[arg-type]

    store.RunStore.record_changes = slow_record_changes  # type: ignore[method-assign]
    ref = json.loads(Path(ref_file).read_text())
    cw = ConnectWiseClient.from_connection(concurrency=ref["settings"]["connectwise_concurrency"])
    print(json.dumps(steps.push_batch(store.make_engine(db_url), ref, int(batch), cw)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
