"""`python -m billing_sandbox.generate ...`, the same as `python -m billing_sandbox generate ...`."""

from billing_sandbox.generate.output import main

raise SystemExit(main())
