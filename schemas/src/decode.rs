//! Bytes → [`Event`], or the dead-letter reason why not (design §8).
//!
//! Decoding is three steps so the caller can own each borrow: [`check_bytes`] (size,
//! UTF-8), [`parse`] (strict JSON), [`Event::from_value`] (shape and types). The first
//! failure wins, in the order the design lists.

use std::borrow::Cow;

use crate::event::{Args, Body, Event, FieldErrors, Log, ToolCall, Webhook, END_TS, MIN_TS};
use crate::jcs;
use crate::json::{self, Object, ParseError, Value};

/// The default input size limit: 1 MiB.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// Why an input could not become an [`Event`]. Each variant is one `reason` label of
/// `warden_dlq_total`; the set is closed so the label stays bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Over the size limit.
    #[error("message is {len} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Message size.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Not UTF-8, or an unpaired surrogate escape.
    #[error("not valid UTF-8 text")]
    InvalidUtf8,
    /// Nested deeper than 64 levels.
    #[error("nested deeper than {} levels", json::MAX_DEPTH)]
    TooDeep,
    /// Not strict JSON.
    #[error("not valid JSON: {0}")]
    InvalidJson(&'static str),
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// `type` missing or not one of webhook / tool_call / log.
    #[error("missing or unknown `type`")]
    UnknownType,
    /// A required field is absent (or null).
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A required field has the wrong type.
    #[error("field `{0}` has the wrong type")]
    MistypedField(&'static str),
    /// `ts` outside 2000-01-01 .. 2100-01-01.
    #[error("`ts` is outside 2000-01-01..2100-01-01")]
    TimestampOutOfRange,
}

impl DecodeError {
    /// The `warden.reason` header / `reason` field / metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::TooDeep => "too_deep",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::UnknownType => "unknown_type",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::MistypedField(_) => "mistyped_field",
            DecodeError::TimestampOutOfRange => "timestamp_out_of_range",
        }
    }

    /// Every reason label, for metric pre-registration.
    pub const REASONS: [&'static str; 9] = [
        "too_large",
        "invalid_utf8",
        "too_deep",
        "invalid_json",
        "not_an_object",
        "unknown_type",
        "missing_field",
        "mistyped_field",
        "timestamp_out_of_range",
    ];
}

/// Checks size and UTF-8; returns the text, without a leading byte order mark.
pub fn check_bytes(bytes: &[u8], max_bytes: usize) -> Result<&str, DecodeError> {
    // A UTF-8 byte order mark before the text is not part of it (nor of its
    // size): RFC 8259 lets a parser ignore one, and files saved by some editors
    // start with it.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge { len: bytes.len(), limit: max_bytes });
    }
    std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

/// Parses strict JSON, mapping parser failures onto dead-letter reasons.
pub fn parse(text: &str) -> Result<Value<'_>, DecodeError> {
    json::parse(text).map_err(|e| match e {
        ParseError::LoneSurrogate(_) => DecodeError::InvalidUtf8,
        ParseError::TooDeep(_) => DecodeError::TooDeep,
        ParseError::Invalid { what, .. } => DecodeError::InvalidJson(what),
    })
}

/// The members events read, indexed once per object so decoding is one pass over
/// its members instead of a linear search per field.
#[derive(Clone, Copy)]
enum F {
    Type,
    Ts,
    Tenant,
    Id,
    Source,
    ProviderMessageId,
    Visitor,
    Ip,
    Route,
    SignatureValid,
    Text,
    Session,
    Run,
    Turn,
    Workflow,
    User,
    Tool,
    Args,
    Status,
    DurationMs,
    Retries,
    TokensIn,
    TokensOut,
    CostUsd,
    Service,
    Level,
    Message,
    Fields,
}

const FIELD_COUNT: usize = F::Fields as usize + 1;

fn field_of(key: &str) -> Option<F> {
    Some(match key {
        "type" => F::Type,
        "ts" => F::Ts,
        "tenant" => F::Tenant,
        "id" => F::Id,
        "source" => F::Source,
        "provider_message_id" => F::ProviderMessageId,
        "visitor" => F::Visitor,
        "ip" => F::Ip,
        "route" => F::Route,
        "signature_valid" => F::SignatureValid,
        "text" => F::Text,
        "session" => F::Session,
        "run" => F::Run,
        "turn" => F::Turn,
        "workflow" => F::Workflow,
        "user" => F::User,
        "tool" => F::Tool,
        "args" => F::Args,
        "status" => F::Status,
        "duration_ms" => F::DurationMs,
        "retries" => F::Retries,
        "tokens_in" => F::TokensIn,
        "tokens_out" => F::TokensOut,
        "cost_usd" => F::CostUsd,
        "service" => F::Service,
        "level" => F::Level,
        "message" => F::Message,
        "fields" => F::Fields,
        _ => return None,
    })
}

/// The object's known members; null reads as absent.
struct Members<'a> {
    slots: [Option<&'a Value<'a>>; FIELD_COUNT],
}

impl<'a> Members<'a> {
    fn index(obj: &'a Object<'a>) -> Self {
        let mut slots = [None; FIELD_COUNT];
        for (k, v) in obj.iter() {
            if let Some(f) = field_of(k) {
                slots[f as usize] = Some(v);
            }
        }
        Members { slots }
    }

    fn raw(&self, f: F) -> Option<&'a Value<'a>> {
        self.slots[f as usize]
    }

    fn present(&self, f: F) -> Option<&'a Value<'a>> {
        self.raw(f).filter(|v| !matches!(v, Value::Null))
    }

    fn required_str(&self, f: F, name: &'static str) -> Result<&'a str, DecodeError> {
        match self.present(f) {
            None => Err(DecodeError::MissingField(name)),
            Some(Value::String(s)) => Ok(s.as_ref()),
            Some(_) => Err(DecodeError::MistypedField(name)),
        }
    }

    fn opt_str(&self, f: F, name: &'static str, fe: &mut FieldErrors) -> Option<&'a str> {
        match self.present(f)? {
            Value::String(s) => Some(s.as_ref()),
            _ => {
                fe.add(name);
                None
            }
        }
    }

    /// An identifier field: a string, or a number read as its canonical JSON text.
    fn opt_id(&self, f: F, name: &'static str, fe: &mut FieldErrors) -> Option<Cow<'a, str>> {
        match self.present(f)? {
            Value::String(s) => Some(Cow::Borrowed(s.as_ref())),
            Value::Number(n) => {
                let mut out = String::new();
                jcs::write_number(n, &mut out);
                Some(Cow::Owned(out))
            }
            _ => {
                fe.add(name);
                None
            }
        }
    }

    fn opt_bool(&self, f: F, name: &'static str, fe: &mut FieldErrors) -> Option<bool> {
        match self.present(f)? {
            Value::Bool(b) => Some(*b),
            _ => {
                fe.add(name);
                None
            }
        }
    }

    fn opt_num(&self, f: F, name: &'static str, fe: &mut FieldErrors) -> Option<f64> {
        match self.present(f)? {
            Value::Number(n) => Some(n.as_f64()),
            _ => {
                fe.add(name);
                None
            }
        }
    }

    /// `args`: an object, or a string holding one (design §3).
    fn opt_args(&self, fe: &mut FieldErrors) -> Option<Args<'a>> {
        match self.present(F::Args)? {
            Value::Object(o) => Some(Args::Object(o)),
            Value::String(s) => match json::parse(s.as_ref()) {
                Ok(Value::Object(o)) => Some(Args::Parsed(o)),
                _ => {
                    fe.add("args");
                    None
                }
            },
            _ => {
                fe.add("args");
                None
            }
        }
    }
}

impl<'a> Event<'a> {
    /// Validates the shape of a parsed input object (design §3, §8).
    pub fn from_value(value: &'a Value<'a>) -> Result<Event<'a>, DecodeError> {
        let Value::Object(obj) = value else {
            return Err(DecodeError::NotAnObject);
        };
        let m = Members::index(obj);
        let kind = match m.raw(F::Type) {
            Some(Value::String(s)) if matches!(s.as_ref(), "webhook" | "tool_call" | "log") => s.as_ref(),
            _ => return Err(DecodeError::UnknownType),
        };
        let ts = match m.present(F::Ts) {
            None => return Err(DecodeError::MissingField("ts")),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(ts) if (MIN_TS..END_TS).contains(&ts) => ts,
                Some(_) => return Err(DecodeError::TimestampOutOfRange),
                // Integral but beyond i64 is a time, just far out of range.
                None if n.as_f64().fract() == 0.0 => return Err(DecodeError::TimestampOutOfRange),
                None => return Err(DecodeError::MistypedField("ts")),
            },
            Some(_) => return Err(DecodeError::MistypedField("ts")),
        };
        let mut fe = FieldErrors::default();
        let (tenant, body) = match kind {
            "webhook" => {
                let tenant = m.required_str(F::Tenant, "tenant")?;
                let source = m.required_str(F::Source, "source")?;
                let visitor = m.required_str(F::Visitor, "visitor")?;
                let body = Body::Webhook(Webhook {
                    source,
                    visitor,
                    provider_message_id: m.opt_id(F::ProviderMessageId, "provider_message_id", &mut fe),
                    ip: m.opt_str(F::Ip, "ip", &mut fe),
                    route: m.opt_str(F::Route, "route", &mut fe),
                    signature_valid: m.opt_bool(F::SignatureValid, "signature_valid", &mut fe),
                    text: m.opt_str(F::Text, "text", &mut fe),
                });
                (Some(tenant), body)
            }
            "tool_call" => {
                let tenant = m.required_str(F::Tenant, "tenant")?;
                let session = m.required_str(F::Session, "session")?;
                let tool = m.required_str(F::Tool, "tool")?;
                let body = Body::ToolCall(ToolCall {
                    session,
                    run: m.opt_id(F::Run, "run", &mut fe),
                    turn: m.opt_id(F::Turn, "turn", &mut fe),
                    workflow: m.opt_id(F::Workflow, "workflow", &mut fe),
                    user: m.opt_id(F::User, "user", &mut fe),
                    tool,
                    args: m.opt_args(&mut fe),
                    status: m.opt_str(F::Status, "status", &mut fe),
                    duration_ms: m.opt_num(F::DurationMs, "duration_ms", &mut fe),
                    retries: m.opt_num(F::Retries, "retries", &mut fe),
                    tokens_in: m.opt_num(F::TokensIn, "tokens_in", &mut fe),
                    tokens_out: m.opt_num(F::TokensOut, "tokens_out", &mut fe),
                    cost_usd: m.opt_num(F::CostUsd, "cost_usd", &mut fe),
                });
                (Some(tenant), body)
            }
            _ => {
                let service = m.required_str(F::Service, "service")?;
                let level = m.required_str(F::Level, "level")?;
                let message = m.required_str(F::Message, "message")?;
                let fields = match m.present(F::Fields) {
                    None => None,
                    Some(Value::Object(o)) => Some(o),
                    Some(_) => {
                        fe.add("fields");
                        None
                    }
                };
                let tenant = m.opt_str(F::Tenant, "tenant", &mut fe);
                (tenant, Body::Log(Log { service, level, message, fields }))
            }
        };
        Ok(Event {
            ts,
            tenant,
            id: m.opt_id(F::Id, "id", &mut fe),
            body,
            object: obj,
            raw_text: m.present(F::Text),
            raw_args: m.present(F::Args),
            raw_fields: m.present(F::Fields),
            field_errors: fe,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &str) -> &'static str {
        let decode = || -> Result<(), DecodeError> {
            let text = check_bytes(line.as_bytes(), DEFAULT_MAX_BYTES)?;
            let value = parse(text)?;
            Event::from_value(&value).map(|_| ())
        };
        match decode() {
            Ok(()) => "ok",
            Err(e) => e.reason(),
        }
    }

    const TS: &str = "1767225600000";

    #[test]
    fn dead_letter_reasons_in_order() {
        let cases = [
            (r#"[1]"#.to_string(), "not_an_object"),
            (r#"{"ts":1}"#.to_string(), "unknown_type"),
            (r#"{"type":"email","ts":1}"#.to_string(), "unknown_type"),
            (r#"{"type":"log"}"#.to_string(), "missing_field"),
            (r#"{"type":"log","ts":"1767225600000"}"#.to_string(), "mistyped_field"),
            (r#"{"type":"log","ts":1767225600000.5}"#.to_string(), "mistyped_field"),
            (r#"{"type":"log","ts":1}"#.to_string(), "timestamp_out_of_range"),
            (
                r#"{"type":"log","ts":4102444800000,"service":"a","level":"i","message":"m"}"#.to_string(),
                "timestamp_out_of_range",
            ),
            (r#"{"type":"log","ts":1e30}"#.to_string(), "timestamp_out_of_range"),
            (format!(r#"{{"type":"log","ts":{TS}}}"#), "missing_field"),
            (format!(r#"{{"type":"log","ts":{TS},"service":"a","level":"i","message":5}}"#), "mistyped_field"),
            (format!(r#"{{"type":"webhook","ts":{TS},"source":"s","visitor":"v"}}"#), "missing_field"),
            (format!(r#"{{"type":"webhook","ts":{TS},"tenant":null,"source":"s","visitor":"v"}}"#), "missing_field"),
            (format!(r#"{{"type":"tool_call","ts":{TS},"tenant":"t","session":["s"],"tool":"x"}}"#), "mistyped_field"),
            (format!(r#"{{"type":"log","ts":{TS},"service":"a","level":"i","message":"m"}}"#), "ok"),
            (r#"{"type":"log","ts":1.7672256e12,"service":"a","level":"i","message":"m"}"#.to_string(), "ok"),
            // One leading byte order mark is ignored; anywhere else it is not JSON.
            (
                format!("\u{feff}{{\"type\":\"log\",\"ts\":{TS},\"service\":\"a\",\"level\":\"i\",\"message\":\"m\"}}"),
                "ok",
            ),
            (format!("\u{feff}\u{feff}{{\"type\":\"log\",\"ts\":{TS}}}"), "invalid_json"),
            (format!("{{\"type\":\"log\",\"ts\":{TS}}}\u{feff}"), "invalid_json"),
        ];
        for (line, want) in cases {
            assert_eq!(reason(&line), want, "{line}");
        }
    }

    #[test]
    fn size_and_utf8_come_first() {
        let big = format!("{{\"type\":\"x\",\"pad\":\"{}\"}}", "a".repeat(DEFAULT_MAX_BYTES));
        assert_eq!(reason(&big), "too_large");
        let bytes = b"{\"type\":\"log\",\"x\":\"\xff\"}";
        assert_eq!(check_bytes(bytes, 100).unwrap_err().reason(), "invalid_utf8");
        // A byte order mark is not the event's: not counted against the limit.
        assert_eq!(check_bytes(b"\xEF\xBB\xBF{}", 2), Ok("{}"));
        assert_eq!(check_bytes(b"\xEF\xBB\xBF{ }", 2).unwrap_err().reason(), "too_large");
    }

    #[test]
    fn mistyped_optional_fields_are_counted_not_dead_lettered() {
        let line = format!(
            r#"{{"type":"tool_call","ts":{TS},"tenant":"t","session":"s","tool":"x","run":7,"args":"{{\"b\":1}}","duration_ms":"slow","user":{{}}}}"#
        );
        let value = json::parse(&line).unwrap();
        let ev = Event::from_value(&value).unwrap();
        let Body::ToolCall(tc) = &ev.body else { panic!() };
        assert_eq!(tc.run.as_deref(), Some("7"));
        assert_eq!(tc.duration_ms, None);
        assert!(tc.args.as_ref().unwrap().object().get("b").is_some());
        assert_eq!(ev.field_errors.iter().collect::<Vec<_>>(), ["user", "duration_ms"]);
    }
}
