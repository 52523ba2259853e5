"""A local ConnectWise Manage (REST API 3.0) for tests, demos and benchmarks.

`create_app(section, scenario)` serves the scenario's `connectwise` section with the real API's
routes, resource shapes, auth, paging, conditions and error bodies (docs/connectwise-sandbox.md
lists every route and every choice made where ConnectWise's behaviour is unconfirmed).
`app.state.sandbox` is the `ConnectWiseSandbox` behind it: `snapshot()`, `reset()` and
`error_body(status, message)` (the error shape common.py gives injected faults).

Speed matters (10,000 agreements, 20,000 additions, one additions GET per agreement): records are
held in their API shape, indexed by id, additions also by agreement; each record's JSON is cached
until it changes; filtered+sorted id lists are cached per query until the collection changes.

The modules, lower ones first: `values` (constants, value helpers) and `errors`; `schemas` (the
filterable fields); `records` (scenario → API records); `query` (collections, list queries);
`writes` (writable addition fields); `sandbox` (the data and its operations); `responses` and
`routes` (HTTP).
"""

from billing_sandbox.connectwise.errors import ApiError
from billing_sandbox.connectwise.routes import create_app
from billing_sandbox.connectwise.sandbox import ConnectWiseSandbox

__all__ = ["ApiError", "ConnectWiseSandbox", "create_app"]
