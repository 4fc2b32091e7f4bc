//! The applier's PostgreSQL connection: connect and reconnect with back-off, retry
//! what failed for a transient reason, and name the server without its password.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use postgres::config::Host;
use postgres::{Client, Config, NoTls};

/// How long a start waits for the database before giving up (exit 1).
const STARTUP_WAIT: Duration = Duration::from_secs(30);
/// The longest pause between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A connection that reconnects.
pub struct Db {
    config: Config,
    /// The live client.
    pub client: Client,
    /// `user@host:port/dbname`: the URL without its password, for logs.
    pub name: String,
}

/// The outcome of a retried operation.
pub enum Tried<T> {
    /// It succeeded.
    Done(T),
    /// The server refused the values themselves (SQLSTATE class 22 data exception or
    /// 23 integrity violation): retrying would fail the same way.
    Refused(postgres::Error),
    /// Stopped by a signal while retrying.
    Stopped,
}

/// `user@host:port/dbname` of `config`: everything but the password.
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    format!("{user}@{host}:{port}/{}", config.get_dbname().unwrap_or(user))
}

impl Db {
    /// Connects to the database `url` names, retrying for up to 30 s.
    pub fn connect(url: &str) -> Result<Db> {
        // postgres' parse errors name the option, never its value.
        let mut config: Config = url.parse().map_err(|e| anyhow!("the PostgreSQL URL is not valid: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let name = describe(&config);
        let deadline = Instant::now() + STARTUP_WAIT;
        loop {
            match config.connect(NoTls) {
                Ok(client) => return Ok(Db { config, client, name }),
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(db = %name, error = %explain(&e), "cannot connect to PostgreSQL yet; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    let e = explain(&e);
                    return Err(anyhow!("cannot connect to PostgreSQL at {name} within {STARTUP_WAIT:?}: {e}"));
                }
            }
        }
    }

    /// Runs `f` until it succeeds, is refused, or `stop` is set; reconnects in between
    /// when the connection is gone. Nothing is half-done between tries: every `f` is
    /// one transaction (or one statement).
    pub fn retry<T>(
        &mut self,
        stop: &AtomicBool,
        what: &str,
        mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Tried<T> {
        let mut backoff = Duration::from_millis(250);
        loop {
            let e = match f(&mut self.client) {
                Ok(v) => return Tried::Done(v),
                Err(e) if refused(&e) => return Tried::Refused(e),
                Err(e) => e,
            };
            tracing::warn!(db = %self.name, error = %explain(&e), "{what} failed; retrying in {backoff:?}");
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if stop.load(Ordering::Relaxed) {
                    return Tried::Stopped;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if self.client.is_closed() {
                match self.config.connect(NoTls) {
                    Ok(c) => {
                        tracing::info!(db = %self.name, "reconnected to PostgreSQL");
                        self.client = c;
                    }
                    Err(e) => tracing::warn!(db = %self.name, error = %explain(&e), "cannot reconnect to PostgreSQL"),
                }
            }
        }
    }
}

/// `e` for a log line. postgres' `Display` says only "db error"; the server's message
/// and SQLSTATE are in the error's source.
pub fn explain(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// Whether the server refused the values (not the connection, a lock or the load).
fn refused(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_never_carry_the_password() {
        let c: Config = "postgres://alice:hunter2@db.example:6543/warden".parse().unwrap();
        assert_eq!(describe(&c), "alice@db.example:6543/warden");
        let c: Config = "host=db user=bob password=hunter2".parse().unwrap();
        assert_eq!(describe(&c), "bob@db:5432/bob");
        let e = "postgres://alice:hunter2@db:notaport/x".parse::<Config>().unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
