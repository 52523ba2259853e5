"""Business names: word lists, the tricky names every scenario carries, folding, identifiers, variants."""

from __future__ import annotations

import random
import re
import unicodedata

# ---------------------------------------------------------------------------------------------
# Names

PLACES = [
    "Acme", "Summit", "Riverside", "Lakeside", "Blue Harbor", "Northwind", "Pinecrest", "Maple Leaf",
    "Ironwood", "Silver Creek", "Redstone", "Oakridge", "Cedar Point", "Granite Peak", "Harborview",
    "Evergreen", "Sunrise", "Westfield", "Eastgate", "Brightwater", "Copperfield", "Foxglove", "Hawthorne",
    "Juniper", "Kingsley", "Larkspur", "Meadowbrook", "Northstar", "Orchard Hill", "Prairie", "Quarry Lane",
    "Ravenwood", "Sagebrush", "Tidewater", "Union Square", "Valley View", "Willow Bend", "Yellow Pine",
    "Zenith", "Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon Ridge", "Horizon", "Keystone",
    "Liberty", "Monarch", "Nova", "Pioneer", "Sterling", "Titan", "Vanguard", "Apex", "Bayshore",
    "Clearwater", "Driftwood", "Fairhaven", "Glenwood", "Highland", "Ivy Lane", "Jasper", "Kestrel",
    "Lighthouse", "Mission", "Northgate", "Old Mill", "Parkside", "Red Oak", "Stonebridge", "Three Rivers",
    "Upland", "Vista", "Windmill", "Zürich", "São Paulo", "Montréal", "Malmö", "Kraków", "Córdoba",
    "Reykjavík", "Tromsø", "Düsseldorf",
]  # fmt: skip
SURNAMES = [
    "Anderson", "Baker", "Chen", "Delgado", "Fitzgerald", "García", "Hoffmann", "Ivanova", "Johansson",
    "Kowalski", "Nakamura", "O'Connor", "Patel", "Rossi", "Schröder", "Nguyen", "Øvergaard", "Dubois",
    "Novák", "Müller", "Peña", "Ólafsson", "Murphy", "Okafor", "Singh", "Kim", "Haddad", "Larsen",
    "Moreau", "Brennan", "D'Angelo", "MacLeod", "Whitaker", "Yamamoto", "Zhang", "Abernathy", "Castillo",
    "Eriksen", "Fontaine", "Gallagher", "Lindqvist", "Łukasik",
]  # fmt: skip
INDUSTRIES = [
    "Dental", "Legal", "Logistics", "Plumbing", "Accounting", "Veterinary Clinic", "Family Medicine",
    "Auto Repair", "Construction", "Engineering", "Realty", "Insurance", "Manufacturing", "Architects",
    "Brewing", "Bakery", "Pharmacy", "Credit Union", "Property Management", "Landscaping", "Electric",
    "HVAC", "Consulting", "Marketing", "Orthodontics", "Chiropractic", "Wealth Advisors", "Foods",
    "Printing", "Freight", "Machining", "Labs", "Studios", "Outfitters", "Pediatrics", "Physical Therapy",
    "Staffing", "Transport", "Roofing", "Solar", "Imaging", "Dermatology", "Optometry", "Animal Hospital",
    "Academy", "Hotel", "Winery", "Title & Escrow", "Surveying", "Tax Services",
]  # fmt: skip
PARTNER_TRADES = ["Law", "CPAs", "Architects", "Engineering", "Dental", "Advisors", "Insurance", "Realty"]
SHOPS = ["Auto Body", "Pub", "Hardware", "Bakery", "Garden Center", "Florist", "Deli", "Pharmacy"]
SUFFIXES = [
    "", "", "", "", "", " Inc.", ", Inc.", " LLC", " Ltd", " Group", " & Co.", " Partners", " PC", " LLP",
    " PLLC", " GmbH", " Pty Ltd", " S.A.", " AG", " Corp.",
]  # fmt: skip
PARTNER_SUFFIXES = ["", "", " LLP", " PC", " PLLC"]
# What a company is called in ConnectWise vs the organization in Huntress: same customer, names that
# no normalization equates (the `name_mismatch` variant of unmapped_organization).
ABBREVIATIONS = {
    "Veterinary Clinic": "Vet Clinic", "Family Medicine": "Family Med",
    "Property Management": "Property Mgmt",
    "Accounting": "Acctg", "Manufacturing": "Mfg", "Physical Therapy": "PT", "Construction": "Constr",
    "Engineering": "Eng", "Insurance": "Ins", "Orthodontics": "Ortho",
}  # fmt: skip
# Forced into the first clean key-matched companies: quoting, unicode and markup must survive every
# layer (HTML reports, SQL, logs). They match by key, so they stay clean.
SPECIAL_KEY_NAMES = [
    ("<script>alert('pwned')</script> Holdings", "ScriptHoldings"),
    ("O'Reilly & Daughters Bakery", "OReillyDaughters"),
    ("Müller & Søn Präzisionstechnik GmbH", "MuellerSoen"),
    ("Brooks <b>Bold</b> Design & Print", "BrooksBoldDesign"),
    ("Café Lumière", "CafeLumiere"),
    ("東京 Trading K.K.", "TokyoTrading"),
]
# Forced into the first clean name-matched companies (the organization's name is a case variant).
SPECIAL_NAME_NAMES = ["Zürich Zahnärzte AG", "Peña & Ólafsson Law"]

IDENTIFIER_MAX = 25  # ConnectWise company identifier length limit


def fold(name: str) -> str:
    """The coarsest sensible name folding: accents, case, spacing and punctuation all gone.

    Names distinct under it are distinct under any normalization the sync may use, so the
    generator keeps every company and organization name unique under it unless a collision is planted.
    """
    decomposed = unicodedata.normalize("NFKD", name).casefold()
    return "".join(ch for ch in decomposed if ch.isalnum())


def _ascii_words(name: str) -> list[str]:
    text = re.sub(r"<[^>]*>", " ", name).replace("'", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.findall(r"[A-Za-z0-9]+", text)


def _camel(name: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in _ascii_words(name))[:IDENTIFIER_MAX] or "Company"


def _slug(name: str) -> str:
    return "-".join(w.lower() for w in _ascii_words(name)) or "org"


def _variant(name: str, rng: random.Random) -> str:
    """The same name as someone else typed it: case, doubled spaces, a trailing dot, a dropped comma."""
    for _ in range(8):
        kind = rng.randrange(5)
        if kind == 0:
            out = name.upper()
        elif kind == 1:
            out = name.lower()
        elif kind == 2 and " " in name:
            words = name.split(" ")
            at = rng.randrange(1, len(words))
            out = " ".join(words[:at]) + "  " + " ".join(words[at:])
        elif kind == 3:
            out = name[:-1] if name.endswith(".") else name + "."
        else:
            out = name.replace(", ", " ")
        if out != name:
            return out
    return name.upper() + "."
