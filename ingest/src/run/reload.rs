//! Rule reloads, on SIGHUP, on a change of the config file (polled every two
//! seconds: modification time and size) or `POST /v1/admin/reload`: the file is read
//! again and its rules compiled; a config that does not compile is refused with the
//! field at fault named, and the running rules stay. On success the new engine is
//! swapped in and each partition carries its state over before its next event (see
//! `partition::Task::follow_reload`): no event and no window is lost.
//!
//! Only the rules (and the engine settings they compile with) reload; Kafka, state
//! and HTTP settings need a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use warden_detectors::Engine;
use warden_sinks::http::ReloadRequest;
use warden_sinks::metrics::ResultLabel;

use super::Shared;
use crate::config::Config;

/// Serves reload requests from HTTP and SIGHUP until the HTTP side goes away.
/// `running` is the config warden started with: a reload applies the detection
/// sections only, and says which other sections changed (they need a restart).
pub async fn serve(
    shared: Arc<Shared>,
    running: Config,
    path: Option<PathBuf>,
    hmac: Option<Vec<u8>>,
    mut requests: mpsc::Receiver<ReloadRequest>,
) {
    let mut hangups = hangups();
    let mut poll = tokio::time::interval(FILE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = path.as_deref().and_then(stamp);
    loop {
        let reply = tokio::select! {
            request = requests.recv() => match request {
                Some(r) => Some(r.reply),
                None => return,
            },
            Some(()) = next_hangup(&mut hangups) => None,
            _ = poll.tick() => {
                let now = path.as_deref().and_then(stamp);
                if now == seen {
                    continue;
                }
                seen = now;
                tracing::info!("the config file changed");
                None
            }
        };
        let outcome = reload(&shared, &running, path.as_deref(), hmac.as_deref());
        let result = match &outcome {
            Ok(summary) => {
                tracing::info!(summary, "rules reloaded");
                "ok"
            }
            Err(error) => {
                tracing::error!(error, "reload refused; the running rules stay");
                "error"
            }
        };
        shared.metrics.reloads.get_or_create(&ResultLabel { result: result.into() }).inc();
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
}

/// How often the config file is checked for a change.
const FILE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// What identifies a version of the file without reading it.
fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn reload(shared: &Shared, running: &Config, path: Option<&Path>, hmac: Option<&[u8]>) -> Result<String, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let rules =
        config.compile_rules().map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))?;
    let enabled = rules.enabled().count();
    let generation = shared.replace_engine(Engine::new(rules, hmac.map(<[u8]>::to_vec)));
    let mut summary = format!("generation {generation}: {enabled} rules enabled");
    let pending = restart_only_changes(running, &config);
    if !pending.is_empty() {
        let sections = pending.join(", ");
        tracing::warn!(
            sections,
            "these config sections changed; a reload applies rules only, so they wait for a restart"
        );
        summary.push_str(&format!("; {sections} changed and take effect on restart"));
    }
    Ok(summary)
}

/// The sections other than the detection ones (`[engine]`, `[exempt]`, `[rules]`)
/// that differ between the running config and `new`: clients, listeners and state
/// are built once, at start.
fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    fn differs<T: serde::Serialize>(a: &T, b: &T) -> bool {
        serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
    }
    let mut changed = Vec::new();
    if differs(&running.kafka, &new.kafka) {
        changed.push("[kafka]");
    }
    if differs(&running.processing, &new.processing) {
        changed.push("[processing]");
    }
    if differs(&running.state, &new.state) {
        changed.push("[state]");
    }
    if differs(&running.http, &new.http) {
        changed.push("[http]");
    }
    if differs(&running.metrics, &new.metrics) {
        changed.push("[metrics]");
    }
    changed
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload through HTTP only");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// The next SIGHUP; never resolves without a handler.
async fn next_hangup(h: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(s) = h {
        return s.recv().await;
    }
    let _ = h;
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_that_need_a_restart_are_named() {
        let parse = |t: &str| Config::parse(t, Path::new("t.toml")).unwrap();
        let running = parse("[rules.visitor_rate]\nlimit = 30\n");
        assert!(restart_only_changes(&running, &parse("[rules.visitor_rate]\nlimit = 5\n")).is_empty());
        let new = parse("[http]\naddr = \"127.0.0.1:9999\"\n[state]\nmemory_budget_mb = 64\n");
        assert_eq!(restart_only_changes(&running, &new), ["[state]", "[http]"]);
    }
}
