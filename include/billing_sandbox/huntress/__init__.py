"""The local stand-in for api.huntress.io: the read-only billing routes of the v1 API.

Shapes follow reference/huntress-openapi.json; the choices it leaves open are listed in docs/sandbox.md.

The modules, lower ones first: `errors`; `data` (the scenario turned into API shapes once);
`window` (the sliding-window rate limit); `sandbox` (`HuntressSandbox`, and `HuntressGate`: auth,
rate limit, call-limit headers); `query` (parameters and paging); `routes` (`create_app`).
"""

from billing_sandbox.huntress.data import HuntressData
from billing_sandbox.huntress.errors import ApiError, error_body
from billing_sandbox.huntress.routes import create_app
from billing_sandbox.huntress.sandbox import HuntressGate, HuntressSandbox
from billing_sandbox.huntress.window import SlidingWindow

__all__ = [
    "ApiError",
    "HuntressData",
    "HuntressGate",
    "HuntressSandbox",
    "SlidingWindow",
    "create_app",
    "error_body",
]
