//! Masked previews and redaction. Both work on chars (never byte-slice a value
//! mid-char) and never let a value through whole.

use std::borrow::Cow;

use super::{PiiKind, PiiMatch};

/// A masked preview of `value` (a finding of `kind`) that never contains the value:
/// e.g. `sk-…abcd`, `[RSA PRIVATE KEY]`, `pos…5432`, `**** 1111`. Of a secret it
/// shows at most the first 3 and last 4 characters (design §4).
/// A disguised value is masked as a reader would type it ([`super::canonical`]),
/// but for a connection string, which is masked as found: folding can end a
/// password early (a full-width `；` inside it) and move where it ends. One whose
/// passwords cannot be read as found shows as `***`.
pub fn mask(kind: PiiKind, value: &str) -> String {
    if kind == PiiKind::Dsn {
        return mask_dsn(value).unwrap_or_else(|| "***".to_string());
    }
    let value = &*super::canonical(value);
    let masked = match kind {
        PiiKind::PrivateKey => Some(format!("[{}]", pem_label(value).unwrap_or("PRIVATE KEY"))),
        PiiKind::Jwt if value.starts_with("eyJ") && value.chars().count() >= 12 => {
            Some(format!("eyJ…{}", last_chars(value, 4)))
        }
        PiiKind::Ssn => digits_tail(value, 9, 9).map(|t| format!("***-**-{t}")),
        PiiKind::Card => digits_tail(value, 13, 19).map(|t| format!("**** {t}")),
        PiiKind::Phone => digits_tail(value, 8, 15).map(|t| {
            let stars = value.bytes().filter(u8::is_ascii_digit).count().saturating_sub(4);
            format!("+{}{t}", "*".repeat(stars))
        }),
        PiiKind::Email => mask_email(value),
        PiiKind::EthAddress if value.len() == 42 && value.starts_with("0x") => {
            Some(format!("0x{}…{}", value.chars().nth(2).unwrap_or('?'), last_chars(value, 4)))
        }
        _ => None,
    };
    masked.unwrap_or_else(|| mask_generic(value))
}

/// First 3 and last 4 chars of a long value, `…` plus last 2 of a short one, `***`
/// for a tiny one: never enough to use or guess the secret.
fn mask_generic(value: &str) -> String {
    let n = value.chars().count();
    if n >= 12 {
        let head: String = value.chars().take(3).collect();
        format!("{head}…{}", last_chars(value, 4))
    } else if n >= 6 {
        format!("…{}", last_chars(value, 2))
    } else {
        "***".to_string()
    }
}

/// The last `k` chars of `value`.
fn last_chars(value: &str, k: usize) -> &str {
    let at = value.char_indices().rev().nth(k.saturating_sub(1)).map_or(0, |(i, _)| i);
    &value[at..]
}

/// The last 4 digits, if `value` holds `min..=max` digits (else the generic mask).
fn digits_tail(value: &str, min: usize, max: usize) -> Option<String> {
    let count = value.bytes().filter(u8::is_ascii_digit).count();
    if !(min..=max).contains(&count) {
        return None;
    }
    Some(value.bytes().filter(u8::is_ascii_digit).skip(count - 4).map(char::from).collect())
}

/// `RSA PRIVATE KEY` from `-----BEGIN RSA PRIVATE KEY-----…`: the label only.
fn pem_label(value: &str) -> Option<&str> {
    let rest = value.strip_prefix("-----BEGIN ")?;
    let (label, _) = rest.split_once("-----")?;
    (label.len() <= 64 && !label.contains('\n')).then_some(label)
}

/// The first 3 and last 4 characters of a connection string, as of any secret
/// (`pos…5432` for `postgres://app:pw@db.prod:5432`), less either end where it
/// would show a character of a password (`Ser…` for `Server=db;Password=hunter2`),
/// and no tail for a short one. The finding's path says where it was, and its
/// fingerprint finds the same string elsewhere.
fn mask_dsn(value: &str) -> Option<String> {
    let mut end = value.len();
    let passwords = super::dsn::passwords(value, 0, &mut end);
    if passwords.is_empty() {
        return None;
    }
    let head_end = value.char_indices().nth(3).map_or(value.len(), |(i, _)| i);
    let tail_start = value.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    let long = value.chars().count() >= 12;
    let head = match passwords.iter().all(|&(s, _)| s >= head_end) {
        true => value.get(..head_end)?,
        false => "",
    };
    let tail = match long && passwords.iter().all(|&(_, e)| e <= tail_start) {
        true => value.get(tail_start..)?,
        false => "",
    };
    Some(format!("{head}…{tail}"))
}

/// `m***@example.com`: the local part goes, the domain stays.
fn mask_email(value: &str) -> Option<String> {
    let (local, domain) = value.rsplit_once('@')?;
    let first = local.chars().next()?;
    Some(format!("{first}***@{domain}"))
}

/// `text` with each match replaced by `[REDACTED:<kind>]`. Matches should be sorted
/// and non-overlapping; any that overlap the previous one, run out of range or
/// miss a char boundary are skipped, never a panic.
pub fn redact(text: &str, matches: &[PiiMatch]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in matches {
        if m.start < at || m.end < m.start {
            continue;
        }
        let (Some(before), Some(_)) = (text.get(at..m.start), text.get(m.start..m.end)) else { continue };
        out.push_str(before);
        out.push_str("[REDACTED:");
        out.push_str(m.kind.name());
        out.push(']');
        at = m.end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    out
}

/// Key names whose values are credentials even when no detector recognises the
/// value's shape (`password=hunter2`): matched as a part of the key, any case, with
/// `-` and `.` read as `_` (`X-API-Key`).
const CREDENTIAL_KEYS: [&str; 9] =
    ["pass", "pwd", "secret", "token", "apikey", "api_key", "private_key", "credential", "auth"];

/// Masks the value of every `key=value` / `key: value` / `"key": "value"` /
/// `key => value` whose key names a credential (`[REDACTED:credential]`), JSON
/// escaped in a string (`{\"password\":\"x\"}`) too. For samples shown to people,
/// after [`redact`]: a password has no shape to detect, but its key says what it
/// is. Over-masks rather than under-masks (`author=` goes too); `Authorization:
/// Bearer X` masks the scheme's token as well. Linear in the text, but meant for
/// a sample's few hundred characters: callers cut first.
pub fn mask_credential_assignments(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if (b == b'=' || b == b':') && names_a_credential(&bytes[copied..i]) {
            if let Some((start, end)) = assigned_value(bytes, i + 1) {
                out.push_str(&text[copied..start]);
                out.push_str("[REDACTED:credential]");
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    if out.is_empty() {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Whether the key just before a separator (`before` ends there) names a credential:
/// the run of key characters, past blanks and a closing `"`, `\"`, `'` or `]`.
fn names_a_credential(before: &[u8]) -> bool {
    let mut end = before.len();
    while end > 0 && is_blank(before[end - 1]) {
        end -= 1;
    }
    if end > 0 && matches!(before[end - 1], b'"' | b'\'' | b']') {
        end -= 1;
        if end > 0 && before[end - 1] == b'\\' {
            end -= 1;
        }
    }
    let start = before[..end]
        .iter()
        .rposition(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')))
        .map_or(0, |p| p + 1);
    let key: Vec<u8> = before[start..end]
        .iter()
        .map(|c| match c {
            b'-' | b'.' => b'_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    !key.is_empty() && CREDENTIAL_KEYS.iter().any(|k| key.windows(k.len()).any(|w| w == k.as_bytes()))
}

/// The byte span of the value after a separator at `from`: quoted (to the closing
/// quote, past escaped ones; `\"…\"` inside a JSON string) or bare (to a blank or
/// a delimiter), with an auth scheme's token included. `None` when there is no
/// value, or it opens a structure (`{`, `[`: a nested object, an earlier mask).
fn assigned_value(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    if matches!(bytes.get(i), Some(b'>' | b'=' | b':')) {
        i += 1; // `=>`, `==`, `:=`, `::`
    }
    while i < bytes.len() && is_blank(bytes[i]) {
        i += 1;
    }
    let first = *bytes.get(i)?;
    if first == b'\\' && bytes.get(i + 1) == Some(&b'"') {
        let start = i + 2;
        let len = bytes[start..].windows(2).position(|w| w == b"\\\"").unwrap_or(bytes.len() - start);
        return (len > 0).then_some((start, start + len));
    }
    if first == b'"' || first == b'\'' {
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && bytes[end] != first {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let end = end.min(bytes.len());
        return (end > start).then_some((start, end));
    }
    if matches!(first, b'{' | b'[') {
        return None;
    }
    let bare_end = |at: usize| {
        at + bytes[at..]
            .iter()
            .position(|c| c.is_ascii_whitespace() || matches!(c, b',' | b';' | b'&' | b'}' | b']' | b'"' | b'\''))
            .unwrap_or(bytes.len() - at)
    };
    let mut end = bare_end(i);
    if end == i {
        return None;
    }
    let word = bytes[i..end].to_ascii_lowercase();
    if matches!(word.as_slice(), b"bearer" | b"basic" | b"token" | b"digest") {
        let mut next = end;
        while next < bytes.len() && is_blank(bytes[next]) {
            next += 1;
        }
        if next > end && next < bytes.len() {
            end = bare_end(next);
        }
    }
    Some((i, end))
}

#[cfg(test)]
mod credential_tests {
    use super::mask_credential_assignments as mask;

    const M: &str = "[REDACTED:credential]";

    #[test]
    fn credential_values_are_masked_whatever_their_shape() {
        for (text, want) in [
            (
                "login ok user=bob password=Sup3rS3cretPw from 10.0.0.1",
                format!("login ok user=bob password={M} from 10.0.0.1"),
            ),
            ("AWS_SECRET_ACCESS_KEY=abc/DEF+ghi", format!("AWS_SECRET_ACCESS_KEY={M}")),
            (r#"{"db_password": "p a s s", "user": "x"}"#, format!(r#"{{"db_password": "{M}", "user": "x"}}"#)),
            (r#"{"password":"ab\"cd"}"#, format!(r#"{{"password":"{M}"}}"#)),
            (r#"{\"password\":\"hunter2\"}"#, format!(r#"{{\"password\":\"{M}\"}}"#)),
            ("Authorization: Bearer abc.def ok", format!("Authorization: {M} ok")),
            ("Authorization: Bearer  abc.def ok", format!("Authorization: {M} ok")),
            ("API-TOKEN: zz9;next", format!("API-TOKEN: {M};next")),
            ("X-API-Key: abc123", format!("X-API-Key: {M}")),
            ("password:\thunter2", format!("password:\t{M}")),
            ("password\t= hunter2", format!("password\t= {M}")),
            ("password => hunter2", format!("password => {M}")),
            ("[password] => hunter2", format!("[password] => {M}")),
            ("password=/xY9!", format!("password={M}")),
            ("pwd='q w'", format!("pwd='{M}'")),
            ("ünïcode secret=ß€ ok", format!("ünïcode secret={M} ok")),
        ] {
            assert_eq!(mask(text), want, "{text}");
        }
    }

    #[test]
    fn other_assignments_and_edges_stay_and_never_panic() {
        for text in [
            "user=bob status=ok",
            "see https://example.com/a",
            "time: 12:30",
            "password reset requested",
            "password= ",
            "token: {",
            "password=",
            "password=\"",
            "token::",
            "pwd:=",
            "x=[REDACTED:jwt]",
        ] {
            assert_eq!(mask(text), text);
        }
        for text in [
            "password==x",
            "token::x",
            "auth:/auth:/auth:/",
            "pwd={pwd={",
            "secret=\"\\",
            "a\\\"=\\\"",
            "пароль password=пароль",
        ] {
            let _ = mask(text);
        }
    }
}
