"""The plant model: lines, machines, endpoints, shift calendar, reasons, tariff.

Pydantic models, validated when the plant file is loaded (``config.loader``). Pure:
reading files and environment happens in ``config``, never here.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.lookup import by_id
from domain.model import Signal, State
from domain.text import DEFAULT_LANGUAGE, Language, LocalText

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class Strict(BaseModel):
    # allow_inf_nan=False: an infinite retention or cycle time passed validation and
    # crashed the collector later (OverflowError); every number in a plant file is finite.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


DAY_S = 86_400.0

MAX_PRICE_PER_KWH = 1_000.0  # any currency: far above any tariff, catches typos and overflow
MAX_POWER_KW = 1_000_000.0  # a 1 GW machine is a typo
ReasonCode = Annotated[int, Field(ge=0, le=2**31 - 1)]  # PLC reason codes: non-negative DINT


class LossCategory(StrEnum):
    """Six Big Losses (plus planned and external) a downtime reason belongs to."""

    EQUIPMENT_FAILURE = "equipment_failure"
    SETUP_ADJUSTMENT = "setup_adjustment"
    SMALL_STOP = "small_stop"
    REDUCED_SPEED = "reduced_speed"
    PLANNED = "planned"
    STARVED_BLOCKED = "starved_blocked"  # stopped by another machine
    UNEXPLAINED = "unexplained"


class TimestampSource(StrEnum):
    SOURCE = "source"
    SERVER = "server"
    ARRIVAL = "arrival"


class Security(Strict):
    policy: Literal[
        "None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"
    ] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: str | None = None  # path to the client certificate (DER or PEM)
    private_key: str | None = None  # path to the client private key (PEM)
    server_certificate: str | None = None
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password
    # A password crosses the network only with mode SignAndEncrypt; true allows it otherwise
    # (test servers only: config.loader refuses it without this).
    allow_unencrypted_password: bool = False
    # Folder of the server-certificate trust list: ``trusted/`` (accepted) and ``pending/``
    # (presented, refused until an admin accepts them: ``python app.py trust``); see
    # ``collectors.trust``. Without it only a pinned ``server_certificate`` is checked.
    trust_dir: str | None = None


class Endpoint(Strict):
    url: str
    timestamp: TimestampSource = TimestampSource.SOURCE
    publishing_interval_ms: int = Field(default=500, ge=10, le=60_000)
    sampling_interval_ms: int = Field(default=0, ge=0, le=60_000)  # 0: fastest the server can
    queue_size: int = Field(default=1000, ge=1, le=100_000)
    security: Security = Security()

    @field_validator("url")
    @classmethod
    def _opc_tcp(cls, v: str) -> str:
        if not v.startswith("opc.tcp://") or len(v) <= len("opc.tcp://"):
            raise ValueError(f"must be an OPC UA endpoint like opc.tcp://host:4840/path, got {v!r}")
        return v

    @model_validator(mode="after")
    def _no_security_only_when_said(self) -> Endpoint:
        """Values and commands crossing a network unsigned and unencrypted is a choice the
        plant file must make in writing (``security: {policy: None}``); a server on this
        machine (the demo, a gateway on loopback) is exempt."""
        if self.security.policy == "None" and "policy" not in self.security.model_fields_set:
            host = (urlsplit(self.url).hostname or "").lower()
            if host != "localhost" and not host.startswith("127.") and host != "::1":
                raise ValueError(
                    f"{self.url} would be read without any security: set security.policy (e.g. Basic256Sha256 "
                    "with mode SignAndEncrypt, a certificate, a private_key and a trust_dir), or write "
                    "security: {policy: None} to accept that"
                )
        return self


class StateMap(Strict):
    """Raw PLC state values (integers or strings) to canonical states."""

    values: dict[str, State]
    default: State = State.UNKNOWN  # for raw values not listed

    @field_validator("values", mode="before")
    @classmethod
    def _keys_as_text(cls, v: object) -> object:
        if isinstance(v, dict):
            return {str(k): val for k, val in v.items()}
        return v

    def map(self, raw: object) -> State:
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        return self.values.get(str(raw), self.default)


# PackML (ISA-TR88.00.02) StateCurrent numbers.
PACKML = StateMap(
    values={
        "0": State.UNKNOWN,  # Undefined
        "1": State.IDLE,  # Clearing
        "2": State.IDLE,  # Stopped
        "3": State.IDLE,  # Starting
        "4": State.IDLE,  # Idle
        "5": State.STARVED,  # Suspended: external cause (upstream/downstream)
        "6": State.RUNNING,  # Execute
        "7": State.IDLE,  # Stopping
        "8": State.FAULT,  # Aborting
        "9": State.FAULT,  # Aborted
        "10": State.FAULT,  # Holding: internal cause
        "11": State.FAULT,  # Held
        "12": State.FAULT,  # Unholding
        "13": State.STARVED,  # Suspending
        "14": State.STARVED,  # Unsuspending
        "15": State.IDLE,  # Resetting
        "16": State.IDLE,  # Completing
        "17": State.IDLE,  # Complete
    }
)

# OPC 40001-1 Machinery: MachineryItemState by name and by number.
MACHINERY_ITEM_STATE = StateMap(
    values={
        "NotAvailable": State.UNKNOWN,
        "OutOfService": State.FAULT,
        "Executing": State.RUNNING,
        "NotExecuting": State.IDLE,
        "0": State.UNKNOWN,
        "1": State.FAULT,
        "2": State.RUNNING,
        "3": State.IDLE,
    }
)

BUILTIN_STATE_MAPS = {"packml": PACKML, "machinery": MACHINERY_ITEM_STATE}


class Machine(Strict):
    id: Identifier
    name: LocalText = LocalText("")  # a string or {en: ..., zh-CN: ...} (domain.text)
    endpoint: Identifier  # key into Plant.endpoints
    ideal_cycle_time_s: float = Field(gt=0, le=DAY_S)
    state_map: str = "packml"  # "packml", "machinery" or a key of Plant.state_maps
    nodes: dict[Signal, str] = Field(default_factory=dict)  # signal -> OPC UA node id
    counter_bits: int | None = Field(default=None, ge=8, le=64)  # rollover width of counters
    meter_rollover_kwh: float | None = Field(default=None, gt=0, le=1e15)
    # the most the machine can draw: higher kW readings and faster meter growth are
    # implausible (domain.plausibility); None: the plant's ``plausibility.max_power_kw``
    max_power_kw: float | None = Field(default=None, gt=0)
    # Simulator hints (ignored by the collector): power draw per state.
    power_running_kw: float = Field(default=10.0, ge=0, le=MAX_POWER_KW)
    power_idle_kw: float = Field(default=2.0, ge=0, le=MAX_POWER_KW)
    reject_rate: float = Field(default=0.01, ge=0, le=1)

    @field_validator("nodes")
    @classmethod
    def _no_collector_signals(cls, v: dict[Signal, str]) -> dict[Signal, str]:
        for signal in v:
            if signal in (Signal.HEARTBEAT, Signal.LINK):
                raise ValueError(f"{signal} is written by the collector, not read from a node")
        return v


class Line(Strict):
    id: Identifier
    name: LocalText = LocalText("")  # a string or {en: ..., zh-CN: ...} (domain.text)
    output_machine: Identifier
    target_oee: float = Field(default=0.85, gt=0, le=1)
    machines: list[Machine] = Field(min_length=1)
    # the reason codes people may pick for this line's stops (None: the plant's whole list)
    reasons: list[ReasonCode] | None = None

    def machine(self, machine_id: str) -> Machine | None:
        return by_id(self.machines).get(machine_id)


class Break(Strict):
    name: str = "break"
    start: time
    end: time


class Shift(Strict):
    name: Identifier
    start: time
    end: time  # may be <= start: the shift crosses midnight
    breaks: list[Break] = Field(default_factory=list)
    weekdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6])  # Monday=0

    @field_validator("weekdays")
    @classmethod
    def _weekday_range(cls, v: list[int]) -> list[int]:
        if any(d < 0 or d > 6 for d in v):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return v


class Reason(Strict):
    text: LocalText  # a string or {en: ..., zh-CN: ...}
    category: LossCategory
    planned: bool = False
    retired: bool = False  # kept for the stops that carry it (figures, past windows); no longer offered to pick


class TariffPeriod(Strict):
    start: time
    end: time  # may be <= start: crosses midnight
    price_per_kwh: float = Field(ge=0, le=MAX_PRICE_PER_KWH)
    name: str = ""


class Tariff(Strict):
    currency: str = "CNY"
    default_price_per_kwh: float = Field(default=0.7, ge=0, le=MAX_PRICE_PER_KWH)
    periods: list[TariffPeriod] = Field(default_factory=list)


class Retention(Strict):
    # at most a century: longer is a typo, and huge values overflow datetime arithmetic
    stream_days: float = Field(default=8, gt=0, le=36_500)
    minute_rollup_days: float = Field(default=35, gt=0, le=36_500)
    hour_rollup_days: float = Field(default=400, gt=0, le=36_500)
    downtime_days: float = Field(default=400, gt=0, le=36_500)


class Plausibility(Strict):
    """Ceilings on what a machine can produce between two readings (``domain.plausibility``):
    a counter may add ``counter_factor`` x elapsed / ideal cycle time + ``counter_slack_parts``
    parts, a meter ``max_power_kw`` x elapsed + ``meter_slack_kwh``; more is flagged, not counted."""

    counter_factor: float = Field(default=3.0, ge=1)
    counter_slack_parts: float = Field(default=10, ge=0)
    max_power_kw: float = Field(default=10_000, gt=0)  # plant-wide default of Machine.max_power_kw
    meter_slack_kwh: float = Field(default=1.0, ge=0)


class AlertKind(StrEnum):
    """What an alert rule watches (README "Alerts")."""

    STOP = "stop"  # a stop longer than ``minutes``
    BEHIND_PACE = "behind_pace"  # the line's good parts this shift behind its pace
    OEE_BELOW = "oee_below"  # the line's OEE over the last hour below ``below``
    NO_DATA = "no_data"  # nothing heard from a machine for ``seconds``
    IMPLAUSIBLE = "implausible"  # an implausible reading flagged in the last ``seconds``
    WORKER_LAG = "worker_lag"  # the rollup worker ``seconds`` behind


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    URGENT = "urgent"  # the wall flashes until someone acknowledges


class ChannelType(StrEnum):
    WECOM = "wecom"  # WeCom (企业微信) group robot
    DINGTALK = "dingtalk"  # DingTalk (钉钉) custom robot, signed with its secret
    FEISHU = "feishu"  # Feishu (飞书) custom bot, signed with its secret
    JSON = "json"  # any endpoint taking the alert as JSON (HMAC-SHA256 header with a secret)


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class AlertChannel(Strict):
    """A webhook. Its URL (robots' URLs carry their key) and signing secret are read from
    the environment variables named here, never written in the plant file."""

    type: ChannelType
    url_env: EnvName
    secret_env: EnvName | None = None
    min_interval_s: float = Field(default=3.0, ge=0, le=3600)  # rate limit: one message per interval


class AlertRule(Strict):
    """One rule. ``line``/``machine`` narrow it (none: every line, every machine);
    ``channels`` is the escalation order: the first is told when the alert is raised, the
    next after ``escalate_after_min`` without an acknowledgement, and so on."""

    id: Identifier
    kind: AlertKind
    severity: Severity = Severity.WARNING
    line: Identifier | None = None
    machine: Identifier | None = None
    text: str = Field(default="", max_length=200)  # shown before the generated description
    minutes: float | None = Field(default=None, gt=0, le=DAY_S / 60)  # stop
    unplanned_only: bool = False  # stop: planned stops and planned reasons never alert
    category: LossCategory | None = None  # stop: only stops of this loss category
    parts: int | None = Field(default=None, ge=1, le=10_000_000)  # behind_pace
    percent: float | None = Field(default=None, gt=0, le=100)  # behind_pace
    below: float | None = Field(default=None, gt=0, le=1)  # oee_below (0.6 = 60 %)
    seconds: float | None = Field(default=None, ge=1, le=DAY_S)  # no_data, implausible, worker_lag
    channels: list[Identifier] = Field(default_factory=list)
    escalate_after_min: float | None = Field(default=None, gt=0, le=DAY_S / 60)

    @model_validator(mode="after")
    def _threshold_given(self) -> AlertRule:
        needed = {AlertKind.STOP: ("minutes",), AlertKind.BEHIND_PACE: ("parts", "percent"),
                  AlertKind.OEE_BELOW: ("below",), AlertKind.NO_DATA: ("seconds",),
                  AlertKind.WORKER_LAG: ("seconds",)}.get(self.kind, ())
        if needed and all(getattr(self, name) is None for name in needed):
            raise ValueError(f"a {self.kind} rule needs {' or '.join(needed)}")
        if (self.unplanned_only or self.category is not None) and self.kind != AlertKind.STOP:
            raise ValueError("unplanned_only and category apply to stop rules only")
        if self.machine is not None and self.kind in (AlertKind.BEHIND_PACE, AlertKind.OEE_BELOW,
                                                      AlertKind.WORKER_LAG):
            raise ValueError(f"a {self.kind} rule is about a line, not a machine")
        return self


class Alerts(Strict):
    channels: dict[Identifier, AlertChannel] = Field(default_factory=dict)
    rules: list[AlertRule] = Field(default_factory=list)


class Plant(Strict):
    name: LocalText
    language: Language = DEFAULT_LANGUAGE  # the screens' language unless the URL, user or browser ask for another
    timezone: str = "Asia/Shanghai"
    endpoints: dict[Identifier, Endpoint]
    lines: list[Line] = Field(min_length=1)
    shifts: list[Shift] = Field(min_length=1)
    reasons: dict[ReasonCode, Reason] = Field(default_factory=dict)
    state_maps: dict[Identifier, StateMap] = Field(default_factory=dict)
    tariff: Tariff = Tariff()
    co2_kg_per_kwh: float = Field(default=0.5703, ge=0, le=10)  # China grid average, 2022
    micro_stop_threshold_s: float = Field(default=120, ge=0, le=DAY_S)
    gap_timeout_s: float = Field(default=30, ge=1, le=DAY_S)  # silence after which state is unknown
    heartbeat_s: float = Field(default=5, ge=0.1, le=3600)  # 1e-9 would busy-loop the collector
    retention: Retention = Retention()
    plausibility: Plausibility = Plausibility()
    require_login: bool = False  # true: every page and read needs a login too (writes always do)
    alerts: Alerts = Alerts()

    @model_validator(mode="after")
    def _line_reasons_known(self) -> Plant:
        for line in self.lines:
            unknown = [code for code in line.reasons or () if code not in self.reasons]
            if unknown:
                raise ValueError(f"lines[{line.id}].reasons: {unknown} not in the plant's reasons")
        return self

    @model_validator(mode="after")
    def _alert_references(self) -> Plant:
        seen: set[str] = set()
        for rule in self.alerts.rules:
            where = f"alerts.rules[{rule.id}]"
            if rule.id in seen:
                raise ValueError(f"{where}: rule id used twice")
            seen.add(rule.id)
            line = self.line(rule.line) if rule.line is not None else None
            if rule.line is not None and line is None:
                raise ValueError(f"{where}.line: no line {rule.line!r}")
            if rule.machine is not None and not any(
                    ln.machine(rule.machine) for ln in ([line] if line is not None else self.lines)):
                on_line = f" on line {rule.line}" if line is not None else ""
                raise ValueError(f"{where}.machine: no machine {rule.machine!r}{on_line}")
            unknown = [name for name in rule.channels if name not in self.alerts.channels]
            if unknown:
                raise ValueError(f"{where}.channels: {unknown} not in alerts.channels")
        return self

    def line(self, line_id: str) -> Line | None:
        return by_id(self.lines).get(line_id)

    def state_map_for(self, machine: Machine) -> StateMap:
        if machine.state_map in self.state_maps:
            return self.state_maps[machine.state_map]
        return BUILTIN_STATE_MAPS[machine.state_map]
