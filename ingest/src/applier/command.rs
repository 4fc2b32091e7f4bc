//! From Kafka message bytes to a command the applier may apply, or the reason it may
//! not: the signature is checked before anything in the record is believed.

use warden_schemas::output::KILLSWITCH_SCHEMA;
use warden_schemas::{Action, KillSwitch};
use warden_sinks::sign::{SignError, Verifier};

/// The longest `ttl_ms` accepted (a year). Longer is no kill-switch warden emits, and
/// `now() + ttl` must stay inside PostgreSQL's timestamp range.
const MAX_TTL_MS: u64 = 366 * 24 * 3_600_000;

/// A command that passed the checks.
#[derive(Debug)]
pub struct Accepted {
    /// The record.
    pub cmd: KillSwitch,
    /// `tenant`, `""` when the record has none.
    pub tenant: String,
    /// `ttl_ms`, in range.
    pub ttl_ms: i64,
    /// The key that signed it; `None` when accepted unverified (`--accept-unsigned`).
    pub key_id: Option<String>,
}

/// Why a message is not applied. `reason` is a closed set (it is stored and logged);
/// `command_id` and `tenant` are kept only as far as they look like what they claim.
#[derive(Debug)]
pub struct Rejection {
    /// The record's `command_id`, if it is 32 lowercase hex characters.
    pub command_id: Option<String>,
    /// The record's `tenant`, printable and at most 64 characters.
    pub tenant: Option<String>,
    /// `malformed`, `not_a_command`, `unsigned`, `wrong_key`, `bad_signature` or
    /// `store_refused` (the database refused the values, see `apply`).
    pub reason: &'static str,
}

/// Checks one message: JSON, a `warden.killswitch.v1`, signed by `verifier`'s key
/// (unsigned ones only when `accept_unsigned`; with no verifier, nothing can be
/// verified, so every command is taken as unsigned).
pub fn check(payload: &[u8], verifier: Option<&Verifier>, accept_unsigned: bool) -> Result<Accepted, Rejection> {
    let reject = |command_id, tenant, reason| Rejection { command_id, tenant, reason };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Err(reject(None, None, "malformed"));
    };
    let command_id = value.get("command_id").and_then(|v| v.as_str()).filter(|s| is_id(s)).map(str::to_string);
    let tenant = value.get("tenant").and_then(|v| v.as_str()).map(printable);
    if value.get("schema").and_then(|v| v.as_str()) != Some(KILLSWITCH_SCHEMA) {
        return Err(reject(command_id, tenant, "not_a_command"));
    }
    let key_id = match (value.get("signature").is_some(), verifier) {
        (true, Some(v)) => match v.verify_value(&value) {
            Ok(()) => value.get("key_id").and_then(|k| k.as_str()).map(str::to_string),
            Err(SignError::WrongKey(_)) => return Err(reject(command_id, tenant, "wrong_key")),
            Err(SignError::NotARecord(_)) => return Err(reject(command_id, tenant, "malformed")),
            Err(SignError::Unsigned) if !accept_unsigned => return Err(reject(command_id, tenant, "unsigned")),
            Err(SignError::Unsigned) => None,
            Err(SignError::Mismatch | SignError::BadKey) => return Err(reject(command_id, tenant, "bad_signature")),
        },
        _ if accept_unsigned => None,
        _ => return Err(reject(command_id, tenant, "unsigned")),
    };
    let Ok(cmd) = serde_json::from_value::<KillSwitch>(value) else {
        return Err(reject(command_id, tenant, "malformed"));
    };
    let kill_switch =
        matches!(cmd.action, Action::HaltSession | Action::DisableWorkflow | Action::DisableTool | Action::KillJob);
    if !kill_switch {
        return Err(reject(command_id, tenant, "not_a_command"));
    }
    let ttl_ms = match i64::try_from(cmd.ttl_ms) {
        Ok(ttl) if command_id.is_some() && cmd.ttl_ms <= MAX_TTL_MS => ttl,
        _ => return Err(reject(command_id, tenant, "malformed")),
    };
    let tenant = cmd.tenant.clone().unwrap_or_default();
    Ok(Accepted { cmd, tenant, ttl_ms, key_id })
}

/// A command id as warden makes them: 32 lowercase hex characters.
pub fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `s` made safe to store and log: control characters dropped (PostgreSQL text refuses
/// NUL), at most 64 characters.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_sinks::sign::{generate, Signer};

    fn signed(target: &str) -> (serde_json::Value, Verifier) {
        let (seed, public) = generate().unwrap();
        let cmd = serde_json::json!({
            "schema": KILLSWITCH_SCHEMA, "command_id": "0123456789abcdef0123456789abcdef",
            "action": "disable_workflow", "target": {"kind": "workflow", "id": target},
            "tenant": "t-9", "detector": "loop", "rule": "workflow_runs", "reason": "r",
            "issued_at": 1_767_225_600_000_i64, "ttl_ms": 3_600_000, "expires_at": 1_767_229_200_000_i64,
        });
        let mut ks: KillSwitch = serde_json::from_value(cmd).unwrap();
        Signer::from_base64_seed(&seed).unwrap().sign(&mut ks);
        (serde_json::to_value(&ks).unwrap(), Verifier::from_base64(&public).unwrap())
    }

    fn reason(value: &serde_json::Value, v: Option<&Verifier>, accept_unsigned: bool) -> &'static str {
        match check(value.to_string().as_bytes(), v, accept_unsigned) {
            Ok(_) => "accepted",
            Err(r) => r.reason,
        }
    }

    #[test]
    fn only_commands_signed_by_the_key_pass() {
        let (good, verifier) = signed("wf-42");
        let accepted = check(good.to_string().as_bytes(), Some(&verifier), false).unwrap();
        assert!(accepted.key_id.is_some() && accepted.tenant == "t-9" && accepted.ttl_ms == 3_600_000);
        let mut forged = good.clone();
        forged["target"]["id"] = "wf-1".into();
        assert_eq!(reason(&forged, Some(&verifier), false), "bad_signature");
        assert_eq!(reason(&forged, Some(&verifier), true), "bad_signature");
        let mut unsigned = good.clone();
        unsigned.as_object_mut().unwrap().remove("signature");
        assert_eq!(reason(&unsigned, Some(&verifier), false), "unsigned");
        assert_eq!(reason(&unsigned, Some(&verifier), true), "accepted");
        let (_, other) = signed("wf-42");
        assert_eq!(reason(&good, Some(&other), false), "wrong_key");
        assert_eq!(reason(&good, None, true), "accepted");
    }

    #[test]
    fn malformed_input_keeps_only_what_looks_like_an_id() {
        let r = check(b"{\"schema\":", None, true).unwrap_err();
        assert_eq!((r.reason, r.command_id, r.tenant), ("malformed", None, None));
        let decision = serde_json::json!({"schema": "warden.decision.v1", "command_id": "x", "tenant": "t\u{0}1"});
        let r = check(decision.to_string().as_bytes(), None, true).unwrap_err();
        assert_eq!((r.reason, r.command_id, r.tenant.as_deref()), ("not_a_command", None, Some("t1")));
        let (mut huge, _) = signed("wf-42");
        huge.as_object_mut().unwrap().remove("signature");
        huge["ttl_ms"] = u64::MAX.into();
        assert_eq!(reason(&huge, None, true), "malformed");
    }
}
