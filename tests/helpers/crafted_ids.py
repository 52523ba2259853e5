"""Ids a crafted request may carry where a route takes a number: digits Python's int() accepts but a
route must refuse (superscripts, other scripts), numbers past int64, signs, exponents, hex, spaces.
Shared by test_bad_input (each route, by hand) and test_fuzz_routes (every route, generated).
"""

SUPERSCRIPT_TWO = "²"
HUGE = "9" * 5000
PAST_INT64 = str(2**63)
CRAFTED_IDS = [
    SUPERSCRIPT_TWO,
    HUGE,
    PAST_INT64,
    "-1",
    "1e3",
    "0x10",
    " 1",
    "١٢",
]  # last: Arabic-Indic digits
