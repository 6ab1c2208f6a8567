"""Tariff prices in plant local time, cost split across periods, CO2, peak demand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.energy import co2_kg, cost_of_interval, cost_split, peak_kw, price_at, quarter_start, zone
from domain.plant import Tariff
from tests.core_support import T0, local

SHANGHAI = "Asia/Shanghai"
TOU = Tariff.model_validate({
    "currency": "CNY", "default_price_per_kwh": 0.62,
    "periods": [
        {"name": "peak", "start": "08:00", "end": "12:00", "price_per_kwh": 0.98},
        {"name": "peak", "start": "18:00", "end": "22:00", "price_per_kwh": 0.98},
        {"name": "valley", "start": "23:00", "end": "07:00", "price_per_kwh": 0.31},
    ],
})


@pytest.mark.parametrize("when, price", [
    ("2024-05-06T07:30", 0.62),
    ("2024-05-06T08:00", 0.98),  # a period starts at its start
    ("2024-05-06T11:59:59", 0.98),
    ("2024-05-06T12:00", 0.62),  # ... and ends before its end
    ("2024-05-06T22:59", 0.62),
    ("2024-05-06T23:00", 0.31),  # crossing midnight
    ("2024-05-07T00:00", 0.31),
    ("2024-05-07T06:59:59", 0.31),
    ("2024-05-07T07:00", 0.62),
])
def test_price_follows_local_time(when: str, price: float) -> None:
    assert price_at(TOU, zone(SHANGHAI), local(SHANGHAI, when)) == price


def test_the_first_matching_period_wins_and_no_period_means_the_default() -> None:
    tariff = Tariff.model_validate({"default_price_per_kwh": 0.5, "periods": [
        {"start": "10:00", "end": "11:00", "price_per_kwh": 2.0},
        {"start": "00:00", "end": "00:00", "price_per_kwh": 1.0}]})  # all day
    tz = zone("UTC")
    assert price_at(tariff, tz, T0 + 10.5 * 3600) == 2.0
    assert price_at(tariff, tz, T0 + 9 * 3600) == 1.0
    assert price_at(Tariff(default_price_per_kwh=0.5), tz, T0) == 0.5


def test_cost_split_across_midnight_and_periods() -> None:
    tz = zone(SHANGHAI)
    start, end = local(SHANGHAI, "2024-05-06T21:30"), local(SHANGHAI, "2024-05-07T00:30")
    pieces = cost_split(TOU, tz, 3.0, start, end)  # 1 kWh per hour
    assert [(p.period, p.kwh) for p in pieces] == [("peak", 0.5), ("default", 1.0), ("valley", 1.5)]
    assert cost_of_interval(TOU, tz, 3.0, start, end) == pytest.approx(0.5 * 0.98 + 1.0 * 0.62 + 1.5 * 0.31)


def test_an_instant_takes_the_price_at_that_instant() -> None:
    tz = zone(SHANGHAI)
    at = local(SHANGHAI, "2024-05-06T09:00")
    assert cost_of_interval(TOU, tz, 2.0, at, at) == pytest.approx(2 * 0.98)


@pytest.mark.parametrize("day, hours", [("2024-03-31", 2.0), ("2024-10-27", 4.0), ("2024-05-06", 3.0)])
def test_periods_on_daylight_saving_days_are_as_long_as_they_really_are(day: str, hours: float) -> None:
    """01:00-04:00 Berlin is 2 h when clocks go forward and 4 h when they go back."""
    berlin = "Europe/Berlin"
    tariff = Tariff.model_validate({"default_price_per_kwh": 1.0, "periods": [
        {"name": "night", "start": "01:00", "end": "04:00", "price_per_kwh": 0.0}]})
    start = local(berlin, f"{day}T00:00")
    end = local(berlin, f"{day}T06:00")
    pieces = cost_split(tariff, zone(berlin), 1.0, start, end)
    night = sum(p.end - p.start for p in pieces if p.period == "night")
    assert night == hours * 3600
    total_hours = (end - start) / 3600
    assert cost_of_interval(tariff, zone(berlin), total_hours, start, end) == pytest.approx(total_hours - hours)


def test_co2_and_peak_demand() -> None:
    assert co2_kg(10.0, 0.5703) == pytest.approx(5.703)
    assert peak_kw({T0: 0.5, T0 + 900: 2.0, T0 + 1800: 1.0}) == 8.0  # 2 kWh in 15 min = 8 kW
    assert peak_kw({}) is None


@pytest.mark.parametrize("at, quarter", [(T0, T0), (T0 + 899.9, T0), (T0 + 900, T0 + 900), (T0 + 1799, T0 + 900)])
def test_quarter_start(at: float, quarter: float) -> None:
    assert quarter_start(at) == quarter


def test_quarters_are_local_quarters_in_half_hour_time_zones() -> None:
    kolkata = "Asia/Kolkata"  # UTC+05:30
    assert quarter_start(local(kolkata, "2024-05-06T10:20")) == local(kolkata, "2024-05-06T10:15")


@settings(max_examples=40, deadline=None)
@given(
    times=st.lists(st.tuples(st.sampled_from([m for m in range(0, 1440, 15) if not 60 <= m < 180]),
                             st.sampled_from([m for m in range(0, 1440, 15) if not 60 <= m < 180]),
                             st.sampled_from([0.1, 0.5, 0.9])), max_size=3),
    around=st.sampled_from(["2024-03-30T12:00", "2024-10-26T12:00", "2024-05-06T12:00"]),
    offset_min=st.integers(0, 36 * 60),
    minutes=st.integers(0, 30 * 60),
)
def test_cost_of_an_interval_is_the_price_of_every_minute_in_it(times: list[tuple[int, int, float]], around: str,
                                                               offset_min: int, minutes: int) -> None:
    """1 kWh per hour over any interval costs what its minutes cost at their own prices."""
    tariff = Tariff.model_validate({"default_price_per_kwh": 0.3, "periods": [
        {"start": f"{a // 60:02d}:{a % 60:02d}", "end": f"{b // 60:02d}:{b % 60:02d}", "price_per_kwh": price}
        for a, b, price in times]})
    tz = zone("Europe/Berlin")
    start = local("Europe/Berlin", around) + offset_min * 60
    end = start + minutes * 60
    expected = sum(price_at(tariff, tz, start + 60 * i + 30) / 60 for i in range(minutes))
    assert cost_of_interval(tariff, tz, minutes / 60, start, end) == pytest.approx(expected, abs=1e-9)
