//! The config file (TOML): detection sections from `warden-detectors`, plus the
//! pipeline's own (`[kafka]`, `[processing]`, `[state]`, `[http]`, `[metrics]`).
//! Secrets never come from here; see [`crate::secret`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use warden_detectors::rules::{self, RawEngine, RawExempt, RawRule, Rules, RulesConfig};

/// Why a config could not be used; exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown field, or a mistyped one (the message names it).
    #[error("config {path}: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// toml's message, with line and field.
        message: String,
    },
    /// Values that parse but are not valid, each with its field path.
    #[error("config {path}: {}", .errors.join("; "))]
    Invalid {
        /// The path.
        path: PathBuf,
        /// `field.path: problem` per error.
        errors: Vec<String>,
    },
}

/// The whole config file as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[engine]`.
    #[serde(default)]
    pub engine: RawEngine,
    /// `[exempt]`.
    #[serde(default)]
    pub exempt: RawExempt,
    /// `[rules.NAME]`.
    #[serde(default)]
    pub rules: BTreeMap<String, RawRule>,
    /// `[kafka]`.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// `[processing]`.
    #[serde(default)]
    pub processing: ProcessingConfig,
    /// `[state]`.
    #[serde(default)]
    pub state: StateConfig,
    /// `[http]`.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[kafka]`: where events come from and records go.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers; empty = the embedded in-process cluster.
    pub brokers: Option<String>,
    /// Consumer group id.
    pub group: String,
    /// Input topics.
    pub input_topics: Vec<String>,
    /// Output topic of decisions.
    pub decisions_topic: String,
    /// Output topic of kill-switch commands.
    pub killswitch_topic: String,
    /// Output topic of alerts.
    pub alerts_topic: String,
    /// Output topic of dead letters.
    pub dlq_topic: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (credentials from the environment).
    pub sasl_mechanism: Option<String>,
    /// CA bundle for TLS.
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    pub ssl_certificate_location: Option<PathBuf>,
    /// Client key for mutual TLS.
    pub ssl_key_location: Option<PathBuf>,
    /// Extra librdkafka properties for every client (never secrets: refused).
    pub client: BTreeMap<String, String>,
    /// Extra properties for the consumer only (`session.timeout.ms`, ...).
    pub consumer: BTreeMap<String, String>,
    /// Extra properties for the producer only (`linger.ms`, ...).
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: None,
            group: "warden".into(),
            input_topics: vec!["events.webhook".into(), "events.tool_call".into(), "events.log".into()],
            decisions_topic: "warden.decisions".into(),
            killswitch_topic: "warden.killswitch".into(),
            alerts_topic: "warden.alerts".into(),
            dlq_topic: "warden.dlq".into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// `[processing]`: delivery and checkpoint cadence.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// `at_least_once` (default) or `exactly_once` (Kafka transactions).
    pub guarantee: String,
    /// Checkpoint at least this often, in milliseconds of processing time.
    pub checkpoint_interval_ms: u64,
    /// ... or after this many events of a partition, whichever comes first.
    pub checkpoint_events: u64,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            guarantee: "at_least_once".into(),
            checkpoint_interval_ms: 5_000,
            checkpoint_events: 100_000,
        }
    }
}

/// `[state]`: where checkpoints live and how much memory state may use.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// RocksDB directory.
    pub dir: Option<PathBuf>,
    /// In-memory state budget, MiB, for the whole process (split evenly across the
    /// partitions it owns). Past it the coldest keys spill to RocksDB.
    pub memory_budget_mb: u64,
    /// In-memory detector keys one tenant may hold in one partition; past it that
    /// tenant's coldest keys spill first. 0 = no quota; unset = as many keys as
    /// fill half of a partition's share of the budget (at [`BYTES_PER_KEY`]).
    pub tenant_key_quota: Option<u64>,
}

/// Whether a librdkafka property holds a credential: a password, a secret, a
/// private key or its passphrase, a SASL user or login config. The
/// config file is printed (`check-config`) and often committed; these are
/// refused there.
fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "passphrase",
        "token",
        "sasl.username",
        "sasl.jaas",
        "sasl.oauthbearer.config",
        "key.pem",
        "private.key",
    ]
    .iter()
    .any(|part| key.contains(part))
}

/// Bytes one in-memory key costs, for the default tenant quota: measured with
/// `warden scan` over generated streams (bench/RESULTS.md, "Memory budget").
pub const BYTES_PER_KEY: usize = 200;

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { dir: None, memory_budget_mb: 512, tenant_key_quota: None }
    }
}

impl StateConfig {
    /// The limits of a process owning `partitions` partitions: an even share of the
    /// budget each, and the tenant quota.
    pub fn limits(&self, partitions: usize) -> warden_detectors::state::limits::Limits {
        let budget = usize::try_from(self.memory_budget_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let share = budget / partitions.max(1);
        let tenant_quota = match self.tenant_key_quota {
            Some(keys) => usize::try_from(keys).unwrap_or(usize::MAX),
            None => (share / 2 / BYTES_PER_KEY).max(1),
        };
        warden_detectors::state::limits::Limits { budget_bytes: share, tenant_quota }
    }
}

/// `[http]`: the metrics, health and block-status endpoints.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Bind address (loopback unless changed).
    pub addr: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { addr: "127.0.0.1:9464".into() }
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Label per-tenant gauges with the tenant id (bounded only if tenants are).
    pub tenant_labels: bool,
}

impl Config {
    /// Reads and validates `path`; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: parse_error(text, &e) })?;
        let mut errors = Vec::new();
        if let Err(rule_errors) = config.compile_rules() {
            errors.extend(rule_errors.iter().map(|e| e.to_string()));
        }
        config.validate(&mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { path: path.into(), errors })
        }
    }

    /// The detection sections, for `warden-detectors`.
    pub fn rules_config(&self) -> RulesConfig {
        RulesConfig { engine: self.engine.clone(), exempt: self.exempt.clone(), rules: self.rules.clone() }
    }

    /// Compiles the rules (defaults merged with this config).
    pub fn compile_rules(&self) -> Result<Rules, Vec<rules::RuleError>> {
        rules::compile(&self.rules_config())
    }

    fn validate(&self, errors: &mut Vec<String>) {
        let k = &self.kafka;
        if k.group.is_empty() {
            errors.push("kafka.group: must not be empty".into());
        }
        if k.input_topics.is_empty() {
            errors.push("kafka.input_topics: needs at least one topic".into());
        }
        for (field, topic) in [
            ("decisions_topic", &k.decisions_topic),
            ("killswitch_topic", &k.killswitch_topic),
            ("alerts_topic", &k.alerts_topic),
            ("dlq_topic", &k.dlq_topic),
        ] {
            if k.input_topics.contains(topic) {
                // warden would read its own records back as (invalid) events, for ever.
                errors.push(format!("kafka.{field}: `{topic}` is also an input topic"));
            }
        }
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&k.security_protocol.as_str()) {
            errors.push("kafka.security_protocol: one of plaintext, ssl, sasl_plaintext, sasl_ssl".into());
        }
        if let Some(m) = &k.sasl_mechanism {
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.as_str()) {
                errors.push("kafka.sasl_mechanism: one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512".into());
            }
        }
        for (section, map) in [("client", &k.client), ("consumer", &k.consumer), ("producer", &k.producer)] {
            for key in map.keys().filter(|key| is_secret_property(key)) {
                errors.push(format!(
                    "kafka.{section}.{key}: secrets come from the environment (WARDEN_KAFKA_SASL_*), not the config file"
                ));
            }
        }
        if !["at_least_once", "exactly_once"].contains(&self.processing.guarantee.as_str()) {
            errors.push("processing.guarantee: one of at_least_once, exactly_once".into());
        }
        if self.processing.checkpoint_interval_ms == 0 {
            errors.push("processing.checkpoint_interval_ms: must be positive".into());
        }
        if self.processing.checkpoint_events == 0 {
            errors.push("processing.checkpoint_events: must be positive".into());
        }
        if self.state.memory_budget_mb == 0 {
            errors.push("state.memory_budget_mb: must be at least 1".into());
        }
        if self.http.addr.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!("http.addr: `{}` is not an address like 127.0.0.1:9464", self.http.addr));
        }
    }

    /// The detection sections as they run (`warden rules`): `[engine]`, `[exempt]`
    /// and every rule, defaults merged with this config.
    pub fn detection_toml(&self, rules: &Rules) -> String {
        #[derive(Serialize)]
        struct Detection<'a> {
            engine: EffectiveEngine,
            exempt: &'a RawExempt,
            rules: &'a BTreeMap<String, RawRule>,
        }
        let d = Detection { engine: EffectiveEngine::of(rules), exempt: &self.exempt, rules: &rules.effective };
        toml::to_string(&d).unwrap_or_default()
    }

    /// The effective config as TOML (defaults filled in); secrets are never in it.
    pub fn to_toml(&self, rules: &Rules) -> String {
        #[derive(Serialize)]
        struct Effective<'a> {
            engine: EffectiveEngine,
            exempt: &'a RawExempt,
            kafka: &'a KafkaConfig,
            processing: &'a ProcessingConfig,
            state: &'a StateConfig,
            http: &'a HttpConfig,
            metrics: &'a MetricsConfig,
            rules: &'a BTreeMap<String, RawRule>,
        }
        let e = Effective {
            engine: EffectiveEngine::of(rules),
            exempt: &self.exempt,
            kafka: &self.kafka,
            processing: &self.processing,
            state: &self.state,
            http: &self.http,
            metrics: &self.metrics,
            rules: &rules.effective,
        };
        let text = toml::to_string(&e).unwrap_or_default();
        // Defaults that depend on the command or the partitions an instance
        // owns have no value to print: say what they are.
        let budget = format!("memory_budget_mb = {}\n", self.state.memory_budget_mb);
        let mut notes = String::new();
        if self.state.dir.is_none() {
            notes.push_str("# dir unset: `run` keeps its state in ./warden-state; `scan` keeps none without --state\n");
        }
        notes.push_str(&budget);
        if self.state.tenant_key_quota.is_none() {
            let quota = |partitions| self.state.limits(partitions).tenant_quota;
            notes.push_str(&format!(
                "# tenant_key_quota unset: half of a partition's share of the budget at {BYTES_PER_KEY} bytes a key \
                 ({} keys per tenant with 1 partition, {} with 6, {} with 12)\n",
                quota(1),
                quota(6),
                quota(12)
            ));
        }
        text.replacen(&budget, &notes, 1)
    }
}

/// `[engine]` as it runs (defaults filled in).
#[derive(Serialize)]
struct EffectiveEngine {
    allowed_lateness_secs: i64,
    future_tolerance_secs: i64,
    max_event_bytes: usize,
}

impl EffectiveEngine {
    fn of(rules: &Rules) -> EffectiveEngine {
        EffectiveEngine {
            allowed_lateness_secs: rules.lateness_ms / 1_000,
            future_tolerance_secs: rules.future_tolerance_ms / 1_000,
            max_event_bytes: rules.max_event_bytes,
        }
    }
}

/// A TOML error as `line L, column C: field.path: problem`. toml's own rendering
/// quotes the offending line, which may hold a secret someone put in the file by
/// mistake: say where and which field, not what, and drop a quoted string value
/// from the problem too.
fn parse_error(text: &str, e: &toml::de::Error) -> String {
    let problem = scrub_value(e.message().trim());
    let Some(span) = e.span() else { return problem };
    let start = span.start.min(text.len());
    let Some(before) = text.get(..start) else { return problem };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    match field_at(text, start) {
        Some(field) => format!("line {line}, column {column}: {field}: {problem}"),
        None => format!("line {line}, column {column}: {problem}"),
    }
}

/// serde's `invalid type: string "…", expected …` (or `integer `…``, `invalid
/// value: …`) without the value it found: `invalid type: string, expected …`.
fn scrub_value(problem: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = problem.strip_prefix(prefix) else { continue };
        let Some(at) = rest.rfind(", expected") else { continue };
        let found = &rest[..at];
        let kind = found.find(['"', '`', '\'']).map_or(found, |q| &found[..q]).trim_end();
        return format!("{prefix}{kind}{}", &rest[at..]);
    }
    problem.to_string()
}

/// The dotted path of the key on the line holding byte `offset` (its table header
/// and key), or the table itself when the line is a header; `None` at top level
/// outside any key. Best effort: it reads lines, not TOML.
fn field_at(text: &str, offset: usize) -> Option<String> {
    fn header(line: &str) -> Option<String> {
        let t = line.trim();
        let inner = t.strip_prefix('[')?.trim_start_matches('[');
        Some(inner.split(']').next()?.trim().replace('"', ""))
    }
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text.get(offset..)?.find('\n').map_or(text.len(), |i| offset + i);
    let line = text.get(line_start..line_end)?;
    if let Some(h) = header(line) {
        return Some(h);
    }
    let table = text.get(..line_start)?.lines().rev().find_map(header);
    let key = line_key(line);
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

/// The key a `key = value` line assigns: a bare or quoted key (dotted parts
/// allowed) followed by `=`; `None` for anything else, so that a value is never
/// taken for a key.
fn line_key(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    let mut key = String::new();
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"')?;
            key.push_str(&quoted[..end]);
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            key.push_str(&rest[..end]);
            rest = &rest[end..];
        }
        rest = rest.trim_start();
        match rest.strip_prefix('.') {
            Some(more) => {
                key.push('.');
                rest = more.trim_start();
            }
            None => break,
        }
    }
    rest.starts_with('=').then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn the_effective_config_states_the_default_tenant_quota() {
        let config = parse("[state]\nmemory_budget_mb = 600\n").unwrap();
        let text = config.to_toml(&config.compile_rules().unwrap());
        let per_one = 600 * (1 << 20) / 2 / BYTES_PER_KEY;
        assert!(text.contains(&format!("({per_one} keys per tenant with 1 partition")), "{text}");
        assert!(text.parse::<toml::Table>().is_ok(), "still TOML: {text}");
        let config = parse("[state]\ntenant_key_quota = 5000\n").unwrap();
        let text = config.to_toml(&config.compile_rules().unwrap());
        assert!(text.contains("tenant_key_quota = 5000") && !text.contains("tenant_key_quota unset"), "{text}");
        assert!(text.contains("# dir unset: `run` keeps its state in ./warden-state"), "{text}");
        let config = parse("[state]\ndir = \"/var/lib/warden\"\n").unwrap();
        let text = config.to_toml(&config.compile_rules().unwrap());
        assert!(text.contains("dir = \"/var/lib/warden\"") && !text.contains("dir unset"), "{text}");
        assert!(text.parse::<toml::Table>().is_ok(), "still TOML: {text}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("[kafka]\nbrokr = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("brokr"), "{e}");
        let e =
            parse("[processing]\nguarantee = \"twice\"\n[rules.visitor_rate]\nlimit = 0\n").unwrap_err().to_string();
        assert!(e.contains("processing.guarantee") && e.contains("rules.visitor_rate.limit"), "{e}");
        let e = parse("[kafka.client]\n\"sasl.password\" = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("kafka.client.sasl.password"), "{e}");
        for (section, key) in [
            ("consumer", "sasl.password"),
            ("producer", "ssl.key.password"),
            ("client", "ssl.key.pem"),
            ("client", "sasl.oauthbearer.config"),
            ("client", "sasl.oauthbearer.assertion.private.key.passphrase"),
        ] {
            let e = parse(&format!("[kafka.{section}]\n\"{key}\" = \"Cfg5ecretVal\"\n")).unwrap_err().to_string();
            assert!(e.contains(&format!("kafka.{section}.{key}")) && !e.contains("Cfg5ecretVal"), "{e}");
        }
        let e = parse("[kafka]\ndlq_topic = \"events.log\"\n").unwrap_err().to_string();
        assert!(e.contains("kafka.dlq_topic: `events.log` is also an input topic"), "{e}");
        // A type error names the field's full path, and not the value it found.
        let e = parse("[kafka]\ngroup = \"g\"\n\n[rules.visitor_rate]\nlimit = \"fifty\"\n").unwrap_err().to_string();
        assert!(e.contains("line 5") && e.contains("rules.visitor_rate.limit: invalid type"), "{e}");
        assert!(!e.contains("fifty"), "{e}");
        let e = parse("[rules.visitor_rate]\nwindow_secs = -5\n").unwrap_err().to_string();
        assert!(e.contains("rules.visitor_rate.window_secs"), "{e}");
        // Both units of one duration: one error, not a second claiming it is missing.
        let e = parse("[rules.visitor_rate]\nwindow_secs = 60\nwindow_ms = 60000\n").unwrap_err().to_string();
        assert!(e.contains("rules.visitor_rate.window_ms: set `window_secs` or `window_ms`, not both"), "{e}");
        assert!(!e.contains("required"), "{e}");
        let e = parse("[rules.visitor_rate]\nlimt = 5\n").unwrap_err().to_string();
        assert!(e.contains("rules.visitor_rate.limt: unknown field"), "{e}");
        let e = parse("[state]\nmemory_budget_mb = 5\nmemory_budget_mb = 6\n").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("state.memory_budget_mb"), "{e}");
        // Nor an unquoted number, nor a value that looks like part of a key.
        let e = parse("[kafka.client]\n\"sasl.password\" = 12345678\n").unwrap_err().to_string();
        assert!(!e.contains("12345678"), "{e}");
        let e = parse("[kafka.client]\n\"sasl.password\": \"c2VjcmV0cGFzcw==\"\n").unwrap_err().to_string();
        assert!(!e.contains("c2VjcmV0cGFzcw"), "{e}");
        assert_eq!(line_key("  a.\"b c\" . d = 1"), Some("a.b c.d".into()));
        assert_eq!(line_key("\"sasl.password\": \"x==\""), None);
        // A syntax error says where, and never quotes the line (it may hold a secret).
        let e = parse("[kafka.client]\n\"sasl.password\" = Cfg5ecretVal-77\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("Cfg5ecretVal"), "{e}");
    }

    #[test]
    fn the_rules_command_prints_every_detection_section() {
        let config = parse("[exempt]\ntenants = [\"t-internal\"]\n[engine]\nmax_event_bytes = 2048\n").unwrap();
        let text = config.detection_toml(&config.compile_rules().unwrap());
        for want in ["[engine]", "max_event_bytes = 2048", "[exempt]", "t-internal", "[rules.visitor_rate]"] {
            assert!(text.contains(want), "{want} missing from {text}");
        }
        assert!(!text.contains("[kafka]"), "{text}");
        assert!(text.parse::<toml::Table>().is_ok(), "still TOML: {text}");
    }

    #[test]
    fn defaults_are_valid_and_print() {
        let c = parse("").unwrap();
        let rules = c.compile_rules().unwrap();
        let text = c.to_toml(&rules);
        assert!(text.contains("[rules.visitor_rate]") && text.contains("warden.decisions"), "{text}");
    }
}
