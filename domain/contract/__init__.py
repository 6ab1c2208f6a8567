"""The stream contract: Redis key names, field names and value encoding.

This is the one place that knows them, in three parts: ``keys`` (every key name and hash
field, with the line's hash tag so a Redis Cluster keeps a line on one shard),
``entries`` (the stream entry format: an event's fields and value encoding, entry ids,
the live hash's values) and ``records`` (what the rollup worker stores: rollup texts,
packed hours, the stops, states and flags members). Collectors write through
``encode_event``, readers decode with ``decode_event``; the README documents the same
format for third-party collectors. Pure: no Redis import, only names and bytes.

Import the contract from here (``from domain import contract``): this package is its one
entry point.
"""

from domain.contract.entries import (
    BAD_TIMESTAMP_STATUSES,
    DEFAULT_RETENTION_S,
    FIELDS,
    NO_STREAM_ID,
    TIMESTAMP_FUTURE,
    TIMESTAMP_TOO_OLD,
    after_stream_id,
    decode_event,
    decode_live,
    decode_value,
    encode_event,
    encode_live,
    encode_value,
    stream_id,
    stream_id_tuple,
)
from domain.contract.keys import (
    ALERT_PARTS,
    PREFIX,
    alerts_key,
    audit_head_key,
    audit_key,
    carry_field,
    checkpoints_key,
    classification_starts_key,
    classifications_key,
    closed_minutes_key,
    data_loss_key,
    endpoint_field,
    endpoint_of_field,
    events_key,
    flags_key,
    handovers_key,
    hour_rollup_key,
    line_of_events_key,
    line_tag,
    live_field,
    live_key,
    login_failures_key,
    minute_rollup_key,
    nodes_key,
    reasons_key,
    rollup_lease_key,
    rollup_state_key,
    rollup_workers_key,
    session_key,
    split_live_field,
    states_key,
    stops_key,
    tokens_key,
    user_key,
    users_key,
    window_sums_key,
)
from domain.contract.records import (
    QUARTER_S,
    ROLLUP_FIELDS,
    ROLLUP_INT_FIELDS,
    STATE_CODES,
    decode_flag_member,
    decode_rollup,
    decode_state_member,
    decode_stop_member,
    encode_flag_member,
    encode_rollup,
    encode_state_member,
    encode_stop_member,
    format_number,
    join_minutes,
    pack,
    split_minutes,
    unpack,
)

__all__ = [
    "PREFIX", "line_tag", "events_key", "line_of_events_key", "live_key", "nodes_key", "live_field",
    "split_live_field", "endpoint_field", "endpoint_of_field", "minute_rollup_key", "closed_minutes_key",
    "hour_rollup_key", "stops_key", "states_key", "rollup_state_key", "rollup_lease_key", "rollup_workers_key",
    "window_sums_key", "carry_field", "checkpoints_key", "flags_key", "data_loss_key", "classifications_key",
    "classification_starts_key", "handovers_key", "reasons_key", "users_key", "user_key", "tokens_key",
    "session_key", "login_failures_key", "audit_key", "audit_head_key", "alerts_key", "ALERT_PARTS", "FIELDS",
    "DEFAULT_RETENTION_S", "TIMESTAMP_FUTURE", "TIMESTAMP_TOO_OLD", "BAD_TIMESTAMP_STATUSES", "NO_STREAM_ID",
    "stream_id", "stream_id_tuple", "after_stream_id", "encode_value", "encode_event", "encode_live",
    "decode_value", "decode_event", "decode_live", "ROLLUP_FIELDS", "ROLLUP_INT_FIELDS", "STATE_CODES",
    "QUARTER_S", "join_minutes", "split_minutes", "pack", "unpack", "encode_flag_member", "decode_flag_member",
    "format_number", "encode_rollup", "decode_rollup", "encode_stop_member", "decode_stop_member",
    "encode_state_member", "decode_state_member",
]
