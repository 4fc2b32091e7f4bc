//! The input event (`warden.event.v1`, design §3), borrowed from the message bytes.
//!
//! An [`Event`] is a typed view over a parsed JSON object: the fields rules read are
//! typed here, and the whole object stays reachable through [`Event::object`] for the
//! detectors that scan every string (PII, tool policy) and for `event_sha256`.

use std::borrow::Cow;

use crate::json::{Object, Value};

/// Event time: integer milliseconds since the Unix epoch.
pub type EventTime = i64;

/// The first accepted event time, 2000-01-01T00:00:00Z.
pub const MIN_TS: EventTime = 946_684_800_000;
/// The first rejected event time, 2100-01-01T00:00:00Z.
pub const END_TS: EventTime = 4_102_444_800_000;

/// The `type` of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A webhook delivered through the gateway.
    Webhook,
    /// An agent's tool call.
    ToolCall,
    /// An application log line.
    Log,
}

impl EventType {
    /// The `type` value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Webhook => "webhook",
            EventType::ToolCall => "tool_call",
            EventType::Log => "log",
        }
    }

    /// All types, in a fixed order (metric pre-registration, config validation).
    pub const ALL: [EventType; 3] = [EventType::Webhook, EventType::ToolCall, EventType::Log];

    /// Parses a `type` value.
    pub fn parse(s: &str) -> Option<EventType> {
        match s {
            "webhook" => Some(EventType::Webhook),
            "tool_call" => Some(EventType::ToolCall),
            "log" => Some(EventType::Log),
            _ => None,
        }
    }
}

/// One decoded input event.
#[derive(Debug)]
pub struct Event<'a> {
    /// Event time (`ts`), within [`MIN_TS`, `END_TS`).
    pub ts: EventTime,
    /// `tenant`; `None` only for a log event without one.
    pub tenant: Option<&'a str>,
    /// The producer's `id`, as text (a number becomes its canonical JSON text).
    pub id: Option<Cow<'a, str>>,
    /// The variant-specific fields.
    pub body: Body<'a>,
    /// The whole input object as received (unknown fields kept).
    pub object: &'a Object<'a>,
    /// `text` as received, whatever its type (scanned even when mistyped).
    pub raw_text: Option<&'a Value<'a>>,
    /// `args` as received, whatever its type.
    pub raw_args: Option<&'a Value<'a>>,
    /// `fields` as received, whatever its type.
    pub raw_fields: Option<&'a Value<'a>>,
    /// Optional fields present with the wrong type (design §3).
    pub field_errors: FieldErrors,
}

/// The variant-specific part of an event.
#[derive(Debug)]
pub enum Body<'a> {
    /// `type: "webhook"`
    Webhook(Webhook<'a>),
    /// `type: "tool_call"`
    ToolCall(ToolCall<'a>),
    /// `type: "log"`
    Log(Log<'a>),
}

/// Webhook fields.
#[derive(Debug)]
pub struct Webhook<'a> {
    /// Provider (`salesiq`, `whatsapp`, ...).
    pub source: &'a str,
    /// End user / visitor id.
    pub visitor: &'a str,
    /// The provider's message id, for replay de-duplication.
    pub provider_message_id: Option<Cow<'a, str>>,
    /// Client IP as sent.
    pub ip: Option<&'a str>,
    /// Request route, e.g. `/auth/login`.
    pub route: Option<&'a str>,
    /// The gateway's HMAC verification result.
    pub signature_valid: Option<bool>,
    /// Message body, when it is a string.
    pub text: Option<&'a str>,
}

/// Tool-call fields.
#[derive(Debug)]
pub struct ToolCall<'a> {
    /// Agent session / conversation id.
    pub session: &'a str,
    /// The run that triggered the call; `None` means the session is the run.
    pub run: Option<Cow<'a, str>>,
    /// The assistant turn within the run.
    pub turn: Option<Cow<'a, str>>,
    /// Workflow id (kill-switch target).
    pub workflow: Option<Cow<'a, str>>,
    /// Principal that owns the session.
    pub user: Option<Cow<'a, str>>,
    /// Tool name.
    pub tool: &'a str,
    /// Arguments, when they are an object (or a string holding one).
    pub args: Option<Args<'a>>,
    /// `ok`, `error`, `timeout`.
    pub status: Option<&'a str>,
    /// Execution time in ms.
    pub duration_ms: Option<f64>,
    /// Retries the call took.
    pub retries: Option<f64>,
    /// Prompt tokens the call caused.
    pub tokens_in: Option<f64>,
    /// Completion tokens the call caused.
    pub tokens_out: Option<f64>,
    /// LLM cost the call caused, in US dollars.
    pub cost_usd: Option<f64>,
}

impl<'a> ToolCall<'a> {
    /// The run id: `run`, or the session when the call carries none (design §5).
    pub fn run_id(&self) -> &str {
        self.run.as_deref().unwrap_or(self.session)
    }
}

/// Tool-call arguments as an object: borrowed from the event, or parsed from a
/// JSON string that held an object.
#[derive(Debug)]
pub enum Args<'a> {
    /// `args` was an object.
    Object(&'a Object<'a>),
    /// `args` was a string holding an object.
    Parsed(Object<'a>),
}

impl<'a> Args<'a> {
    /// The arguments object.
    pub fn object(&self) -> &Object<'a> {
        match self {
            Args::Object(o) => o,
            Args::Parsed(o) => o,
        }
    }
}

/// Log fields.
#[derive(Debug)]
pub struct Log<'a> {
    /// Emitting service.
    pub service: &'a str,
    /// Log level as sent.
    pub level: &'a str,
    /// The log line.
    pub message: &'a str,
    /// Structured fields, when an object.
    pub fields: Option<&'a Object<'a>>,
}

impl<'a> Event<'a> {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self.body {
            Body::Webhook(_) => EventType::Webhook,
            Body::ToolCall(_) => EventType::ToolCall,
            Body::Log(_) => EventType::Log,
        }
    }
}

/// Optional fields that were present with the wrong type; each is one
/// `warden_field_errors_total{field}` label, so the set is closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(u32);

/// Every optional field whose type is checked, in bit order.
pub const OPTIONAL_FIELDS: [&str; 19] = [
    "tenant",
    "id",
    "provider_message_id",
    "ip",
    "route",
    "signature_valid",
    "text",
    "run",
    "turn",
    "workflow",
    "user",
    "args",
    "status",
    "duration_ms",
    "retries",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "fields",
];

impl FieldErrors {
    /// Records `field` (one of [`OPTIONAL_FIELDS`]) as mistyped.
    pub fn add(&mut self, field: &'static str) {
        if let Some(i) = OPTIONAL_FIELDS.iter().position(|f| *f == field) {
            self.0 |= 1 << i;
        }
    }

    /// True when no field was mistyped.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The mistyped fields' names.
    pub fn iter(self) -> impl Iterator<Item = &'static str> {
        OPTIONAL_FIELDS.iter().enumerate().filter(move |(i, _)| self.0 & (1 << i) != 0).map(|(_, f)| *f)
    }
}
