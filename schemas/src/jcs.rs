//! RFC 8785 (JSON Canonicalization Scheme) output.
//!
//! Ids (design §4) are hashes of canonical JSON, and kill-switch signatures are over
//! it, so two producers — or a replay a week later — must write byte-identical text.
//! Canonical form: object members sorted by the UTF-16 code units of their names, no
//! whitespace, minimal string escapes, numbers as ECMAScript writes a double.

use std::cmp::Ordering;

use crate::json::{Number, Object, Value};

/// Writes `v` as RFC 8785 canonical JSON into `out`.
pub fn write_value(v: &Value<'_>, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(o) => write_object(o, out),
    }
}

/// Writes an object with members in canonical order.
pub fn write_object(o: &Object<'_>, out: &mut String) {
    let mut members: Vec<(&str, &Value<'_>)> = o.iter().collect();
    members.sort_by(|a, b| cmp_utf16(a.0, b.0));
    out.push('{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(k, out);
        out.push(':');
        write_value(v, out);
    }
    out.push('}');
}

/// The canonical text of `v` as a new string.
pub fn to_string(v: &Value<'_>) -> String {
    let mut out = String::new();
    write_value(v, &mut out);
    out
}

/// Writes a parsed number the way ECMAScript's `Number.prototype.toString` does.
pub fn write_number(n: &Number<'_>, out: &mut String) {
    match n.small_integer() {
        // A JSON integer has no leading zeros or `+`, so up to 15 digits its text
        // is already the ECMAScript form; only `-0` becomes `0`.
        Some((_, 0)) => out.push('0'),
        Some(_) => out.push_str(n.as_str()),
        None => write_f64(n.as_f64(), out),
    }
}

/// Writes a finite double in ECMAScript form (`-0` is written `0`).
pub fn write_f64(f: f64, out: &mut String) {
    if f == 0.0 {
        out.push('0');
        return;
    }
    let mut buf = ryu_js::Buffer::new();
    out.push_str(buf.format_finite(f));
}

/// Writes an i64 (exact up to 2^53; event times and bucket starts always are).
pub fn write_i64(i: i64, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{i}");
}

/// Writes a string with RFC 8785's escapes: `"` `\` and control characters only.
pub fn write_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(esc);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Orders member names by UTF-16 code units, as RFC 8785 §3.2.3 requires.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Writes a `serde_json::Value` canonically: used for records warden builds itself
/// (kill-switch signatures), where the value never held a non-finite number.
pub fn write_serde(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= 1 << 53) {
                write_i64(i, out)
            } else {
                write_f64(n.as_f64().unwrap_or(0.0), out)
            }
        }
        serde_json::Value::String(s) => write_str(s, out),
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_serde(item, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            let mut members: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            members.sort_by(|a, b| cmp_utf16(a.0, b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write_serde(v, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn canon(text: &str) -> String {
        to_string(&parse(text).unwrap())
    }

    #[test]
    fn rfc8785_examples() {
        // From RFC 8785 §3.2.2 / Appendix B number samples.
        assert_eq!(
            canon("[1E+30, 4.50, 2e-3, 0.000001, 1e-7, -0, 333333333.33333329]"),
            "[1e+30,4.5,0.002,0.000001,1e-7,0,333333333.3333333]"
        );
        assert_eq!(canon("[1e21, 1e20, 9007199254740993]"), "[1e+21,100000000000000000000,9007199254740992]");
        assert_eq!(canon(r#"{"b":1,"a":{"d":true,"c":null}}"#), r#"{"a":{"c":null,"d":true},"b":1}"#);
        assert_eq!(canon(r#""\u20ac\u0001\/\u2028""#), "\"€\\u0001/\u{2028}\"");
    }

    #[test]
    fn member_names_sort_by_utf16_units() {
        // U+1F600 (surrogates D83D..) sorts before U+FB01 in UTF-16, after it in UTF-8.
        assert_eq!(canon("{\"\u{fb01}\":1,\"\u{1f600}\":2,\"a\":3}"), "{\"a\":3,\"\u{1f600}\":2,\"\u{fb01}\":1}");
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        assert_eq!(canon(r#"{ "x": [1, 2], "y": {"b": 2, "a": 1} }"#), canon(r#"{"y":{"a":1,"b":2},"x":[1,2]}"#));
    }
}
