"""The product's answers, typed once: what ``store.reader.PlantReader`` returns, what the
HTTP API serialises (``api.openapi`` generates its OpenAPI schemas from these types),
what the screens read and what the tests' sample reader builds.

They are ``TypedDict``s: plain JSON-ready dicts at run time (nothing changes on the wire),
checked by mypy where they are built and read. Every key is required unless marked
``NotRequired``; an answer has no keys beyond its type's (the OpenAPI schemas are closed:
``additionalProperties: false``, and the API test validates every answer against them).
``Doc`` annotates a field with its description in the OpenAPI document.

Times are epoch seconds (UTC) unless a name says ``_iso``; durations are seconds (``_s``);
ratios are 0..1 (performance may exceed 1: see ``flags``); a ratio is None when it is
undefined (nothing to divide by) and any number None when it is not finite.

The types are grouped by what they answer: ``common`` (``Doc``, the error answer, the
window, the reason coverage), ``kpi_reports`` (line and machine KPIs), ``downtime_energy``
(stops, Pareto, MTBF/MTTR, energy), ``series`` (the charts: KPIs and power per bucket,
the timeline), ``live_health`` (live lines with their andon status, health) and
``operator_loop`` (classifications, reasons, handovers, audit, sessions, users, alerts).
This package is the one entry point: import the answers from ``domain.answers``.
"""

from domain.answers.common import Coverage, Doc, Epoch, Error, Window
from domain.answers.downtime_energy import (
    Downtime,
    DowntimeCounts,
    DowntimeReport,
    DowntimeSummary,
    Energy,
    MachineDowntime,
    MachineEnergy,
    Pareto,
    ParetoRow,
    Reliability,
    Span,
    StopEvent,
)
from domain.answers.kpi_reports import (
    EnergyKpis,
    Flag,
    KpiFlags,
    Kpis,
    LineKpis,
    LineMachineKpis,
    Losses,
    MachineKpiFlags,
    MachineKpis,
    WaterfallStep,
)
from domain.answers.live_health import (
    AndonStatus,
    BadNode,
    CollectorProblems,
    DataLoss,
    Durability,
    Health,
    HealthStatus,
    LineAndon,
    LineHealth,
    LineLive,
    Lines,
    LineStatus,
    LinesWithAndon,
    LineWithAndon,
    LiveReason,
    MachineBadNode,
    MachineLive,
    MachineState,
    RedisHealth,
    RefusedEndpoint,
    ShiftContext,
    WorkerHealth,
)
from domain.answers.operator_loop import (
    Alert,
    AlertAck,
    AlertAcknowledged,
    Alerts,
    Audit,
    AuditEntry,
    Classification,
    Handover,
    HandoverFigures,
    Handovers,
    LineReasonList,
    Login,
    Logout,
    ReasonEntry,
    ReasonLists,
    Reasons,
    ReasonSource,
    Session,
    Stops,
    User,
    Users,
)
from domain.answers.series import KpiBucket, KpiSeries, MachineTimeline, PowerSeries, Segment, Timeline

__all__ = [
    "Doc", "Epoch", "Error", "Window", "Coverage", "WaterfallStep", "Losses", "EnergyKpis", "KpiFlags", "Flag",
    "MachineKpiFlags", "Kpis", "MachineKpis", "LineMachineKpis", "LineKpis", "KpiBucket", "KpiSeries",
    "PowerSeries", "Segment", "MachineTimeline", "Timeline", "StopEvent", "ParetoRow", "Pareto", "MachineDowntime",
    "DowntimeCounts", "DowntimeSummary", "Reliability", "Span", "DowntimeReport", "Downtime", "MachineEnergy",
    "Energy", "HealthStatus", "LineStatus", "MachineState", "LiveReason", "MachineBadNode", "MachineLive",
    "LineLive", "Lines", "ShiftContext", "AndonStatus", "LineAndon", "LineWithAndon", "LinesWithAndon",
    "RedisHealth", "Durability", "DataLoss", "WorkerHealth", "BadNode", "RefusedEndpoint", "CollectorProblems",
    "LineHealth", "Health", "Stops", "ReasonSource", "Reasons", "ReasonEntry", "LineReasonList", "ReasonLists",
    "Classification", "HandoverFigures", "Handover", "Handovers", "AuditEntry", "Audit", "Login", "Logout",
    "Session", "User", "Users", "AlertAck", "Alert", "Alerts", "AlertAcknowledged",
]
