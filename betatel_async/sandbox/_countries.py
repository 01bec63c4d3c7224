"""The countries the sandbox serves: real ISO 3166-1 codes, a fixed selection."""

from __future__ import annotations

from typing import Final

__all__ = ["COUNTRIES", "EUROPE", "GLOBAL"]

#: ``(iso2, iso3, name)`` of each country, in listing order (by alpha-2 code).
COUNTRIES: Final = (
    ("AE", "ARE", "United Arab Emirates"),
    ("AR", "ARG", "Argentina"),
    ("AT", "AUT", "Austria"),
    ("AU", "AUS", "Australia"),
    ("BE", "BEL", "Belgium"),
    ("BG", "BGR", "Bulgaria"),
    ("BR", "BRA", "Brazil"),
    ("CA", "CAN", "Canada"),
    ("CH", "CHE", "Switzerland"),
    ("CL", "CHL", "Chile"),
    ("CN", "CHN", "China"),
    ("CO", "COL", "Colombia"),
    ("CZ", "CZE", "Czechia"),
    ("DE", "DEU", "Germany"),
    ("DK", "DNK", "Denmark"),
    ("EE", "EST", "Estonia"),
    ("EG", "EGY", "Egypt"),
    ("ES", "ESP", "Spain"),
    ("FI", "FIN", "Finland"),
    ("FR", "FRA", "France"),
    ("GB", "GBR", "United Kingdom"),
    ("GR", "GRC", "Greece"),
    ("HR", "HRV", "Croatia"),
    ("HU", "HUN", "Hungary"),
    ("ID", "IDN", "Indonesia"),
    ("IE", "IRL", "Ireland"),
    ("IL", "ISR", "Israel"),
    ("IN", "IND", "India"),
    ("IS", "ISL", "Iceland"),
    ("IT", "ITA", "Italy"),
    ("JP", "JPN", "Japan"),
    ("KE", "KEN", "Kenya"),
    ("KR", "KOR", "South Korea"),
    ("LT", "LTU", "Lithuania"),
    ("LU", "LUX", "Luxembourg"),
    ("LV", "LVA", "Latvia"),
    ("MA", "MAR", "Morocco"),
    ("MX", "MEX", "Mexico"),
    ("MY", "MYS", "Malaysia"),
    ("NG", "NGA", "Nigeria"),
    ("NL", "NLD", "Netherlands"),
    ("NO", "NOR", "Norway"),
    ("NZ", "NZL", "New Zealand"),
    ("PE", "PER", "Peru"),
    ("PH", "PHL", "Philippines"),
    ("PL", "POL", "Poland"),
    ("PT", "PRT", "Portugal"),
    ("RO", "ROU", "Romania"),
    ("RS", "SRB", "Serbia"),
    ("SE", "SWE", "Sweden"),
    ("SG", "SGP", "Singapore"),
    ("SI", "SVN", "Slovenia"),
    ("SK", "SVK", "Slovakia"),
    ("TH", "THA", "Thailand"),
    ("TR", "TUR", "Türkiye"),
    ("UA", "UKR", "Ukraine"),
    ("US", "USA", "United States"),
    ("VN", "VNM", "Viet Nam"),
    ("ZA", "ZAF", "South Africa"),
)
#: Alpha-3 codes of the European countries above (package templates name countries by alpha-3).
EUROPE: Final = (
    "AUT", "BEL", "BGR", "CHE", "CZE", "DEU", "DNK", "ESP", "EST", "FIN", "FRA", "GBR", "GRC",
    "HRV", "HUN", "IRL", "ISL", "ITA", "LTU", "LUX", "LVA", "NLD", "NOR", "POL", "PRT", "ROU",
    "SRB", "SVK", "SVN", "SWE",
)  # fmt: skip
#: Alpha-3 codes of every country above.
GLOBAL: Final = tuple(iso3 for _, iso3, _ in COUNTRIES)
