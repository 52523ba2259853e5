"""How a value reads in a detail: text quoted or "(none)", a quantity as a whole number when it is one."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _qty(value: Any) -> str:
    if pd.isna(value):
        return "none"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _text(value: Any, quote: bool = True) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "(none)"
    return repr(str(value)) if quote else str(value)
