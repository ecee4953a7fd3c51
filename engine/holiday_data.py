"""Public holidays and adjusted working days (China's 调休) from the ``holidays`` package, offline; which years it covers."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from importlib.metadata import version

from .suggest import did_you_mean


@lru_cache(maxsize=256)
def country_year(country: str, year: int) -> tuple[frozenset[date], frozenset[date]]:
    """A country's public holidays and adjusted working days (China's 调休) of one year."""
    import holidays

    data = holidays.country_holidays(country, years=year)
    workdays = frozenset(day for day in getattr(data, "weekend_workdays", set()) if day.year == year)
    return frozenset(day for day in data if day.year == year), workdays


def countries() -> tuple[str, ...]:
    """The country codes the ``holidays`` package knows (``CN``, ``DE``, ``US``...)."""
    import holidays

    return tuple(sorted(holidays.list_supported_countries()))


def holiday_problem(country: str, year: int) -> str | None:
    """What is wrong with ``holidays: COUNTRY`` in ``year``, None when its data covers the year.

    A country whose data lists adjusted working days (China) must list them for ``year`` too:
    its schedule is published year by year, and a year without it would be a guess.
    """
    import holidays

    unknown = unknown_country(country)
    if unknown:
        return unknown
    data = holidays.country_holidays(country, years=year)
    if not data.start_year <= year <= data.end_year:
        return f"the holidays package has no {country} holidays for {year} (it covers {data.start_year}-{data.end_year})"
    adjusts = any(country_year(country, earlier)[1] for earlier in range(year - 3, year))
    if adjusts and not country_year(country, year)[1]:
        return (
            f"the holidays package {version('holidays')} has no {country} schedule of adjusted working days for {year} yet;"
            " upgrade it (pip install -U holidays), or list that year's adjusted working days under the calendar's"
            " open: (and its extra days off under closed:) once they are published"
        )
    return None


def unknown_country(country: str) -> str | None:
    """Why ``holidays: COUNTRY`` names no country the package knows, None when it does."""
    known = countries()
    if country not in known:
        return f"unknown country {country!r} for holidays{did_you_mean(country, known)}; write a code such as CN, DE or US"
    return None
