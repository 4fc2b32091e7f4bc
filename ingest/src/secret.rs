//! [`Secret`]: a value from the environment that never prints.

use std::fmt;

/// A secret string. `Debug` and `Display` print `<redacted>`; the value is reachable
/// only through [`Secret::expose`], so it cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    #[cfg(test)]
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that needs it (a MAC key, a SASL handshake).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads `name` from the environment; unset or empty is `None`.
    pub fn from_env(name: &str) -> Option<Secret> {
        std::env::var(name).ok().filter(|v| !v.is_empty()).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// The secrets warden reads, all from the environment (design §7).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Secrets {
    /// `WARDEN_HMAC_KEY`: keys PII fingerprints.
    pub hmac_key: Option<Secret>,
    /// `WARDEN_SIGNING_KEY`: base64 Ed25519 seed for kill-switch signatures.
    pub signing_key: Option<Secret>,
    /// `WARDEN_ADMIN_TOKEN`: bearer token of the admin endpoints.
    pub admin_token: Option<Secret>,
    /// `WARDEN_KAFKA_SASL_USERNAME`.
    pub sasl_username: Option<Secret>,
    /// `WARDEN_KAFKA_SASL_PASSWORD`.
    pub sasl_password: Option<Secret>,
}

impl Secrets {
    /// Reads every secret from the environment.
    pub fn from_env() -> Secrets {
        Secrets {
            hmac_key: Secret::from_env("WARDEN_HMAC_KEY"),
            signing_key: Secret::from_env("WARDEN_SIGNING_KEY"),
            admin_token: Secret::from_env("WARDEN_ADMIN_TOKEN"),
            sasl_username: Secret::from_env("WARDEN_KAFKA_SASL_USERNAME"),
            sasl_password: Secret::from_env("WARDEN_KAFKA_SASL_PASSWORD"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
    }
}
