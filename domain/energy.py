"""Energy arithmetic: time-of-use prices in plant local time, cost split, CO2, peak demand.

Tariff periods are local times of day, ``[start, end)``; a period whose end is not after
its start crosses midnight (equal start and end: the whole day). The first period that
covers an instant sets its price, else the tariff's default. Prices follow the local wall
clock, so on daylight-saving days a period is as long as it really is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from domain.plant import Tariff, TariffPeriod

QUARTER_S = 900.0
DEFAULT_PERIOD_NAME = "default"


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def seconds_of_day(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def period_covers(period: TariffPeriod, local_seconds: float) -> bool:
    start, end = seconds_of_day(period.start), seconds_of_day(period.end)
    if start < end:
        return start <= local_seconds < end
    return local_seconds >= start or local_seconds < end


def period_at(tariff: Tariff, tz: ZoneInfo, at: float) -> TariffPeriod | None:
    """The tariff period in force at ``at`` (None: the default price)."""
    local = datetime.fromtimestamp(at, tz)
    sod = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return next((p for p in tariff.periods if period_covers(p, sod)), None)


def price_at(tariff: Tariff, tz: ZoneInfo, at: float) -> float:
    """Price per kWh at an instant."""
    period = period_at(tariff, tz, at)
    return tariff.default_price_per_kwh if period is None else period.price_per_kwh


def tariff_boundaries(tariff: Tariff, tz: ZoneInfo, start: float, end: float) -> list[float]:
    """Instants in (start, end) where the price may change (period starts and ends)."""
    if not tariff.periods or end <= start:
        return []
    day = datetime.fromtimestamp(start, tz).date()  # a boundary in (start, end) lies on one of
    last = datetime.fromtimestamp(end, tz).date()  # the local dates from start's to end's
    out: set[float] = set()
    while day <= last:
        for period in tariff.periods:
            for t in (period.start, period.end):
                at = datetime.combine(day, t, tzinfo=tz).timestamp()
                if start < at < end:
                    out.add(at)
        day += timedelta(days=1)
    return sorted(out)


@dataclass(frozen=True, slots=True)
class CostPiece:
    """Part of an interval at one price; ``kwh`` is its share of the interval's energy."""

    start: float
    end: float
    period: str
    price_per_kwh: float
    kwh: float

    @property
    def cost(self) -> float:
        return self.kwh * self.price_per_kwh


def cost_split(tariff: Tariff, tz: ZoneInfo, kwh: float, start: float, end: float) -> list[CostPiece]:
    """Energy used evenly over [start, end), split at tariff boundaries.

    Even use is the right assumption for a constant power reading; an instant
    (``end <= start``) takes the price at ``start``.
    """
    if end <= start:
        return [_piece(tariff, tz, start, start, kwh)]
    cuts = [start, *tariff_boundaries(tariff, tz, start, end), end]
    length = end - start
    return [_piece(tariff, tz, a, b, kwh * (b - a) / length) for a, b in zip(cuts, cuts[1:], strict=False)]


def _piece(tariff: Tariff, tz: ZoneInfo, a: float, b: float, kwh: float) -> CostPiece:
    period = period_at(tariff, tz, a)
    if period is None:
        return CostPiece(a, b, DEFAULT_PERIOD_NAME, tariff.default_price_per_kwh, kwh)
    return CostPiece(a, b, period.name or DEFAULT_PERIOD_NAME, period.price_per_kwh, kwh)


def cost_of_interval(tariff: Tariff, tz: ZoneInfo, kwh: float, start: float, end: float) -> float:
    """Cost of ``kwh`` used evenly over [start, end) (price at the time it was used)."""
    if not tariff.periods:
        return kwh * tariff.default_price_per_kwh
    return sum(piece.cost for piece in cost_split(tariff, tz, kwh, start, end))


def co2_kg(kwh: float, kg_per_kwh: float) -> float:
    return kwh * kg_per_kwh


def quarter_start(at: float) -> float:
    """Start of the quarter hour containing ``at`` (UTC-aligned: every time zone offset in
    use is a multiple of 15 minutes, so these are local quarters too)."""
    return (at // QUARTER_S) * QUARTER_S


def peak_kw(quarter_kwh: Mapping[float, float]) -> float | None:
    """Peak demand: the highest 15-minute average power (kWh in a quarter x 4)."""
    if not quarter_kwh:
        return None
    return max(quarter_kwh.values()) * (3600.0 / QUARTER_S)
