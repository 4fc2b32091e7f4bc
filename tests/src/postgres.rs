//! A real PostgreSQL server for tests: Debian's `postgresql` package (installed by
//! `.ci/setup.sh`), a fresh cluster in a temporary directory, listening on a free
//! loopback port only. A test that needs it and cannot start it fails — it never skips.
//!
//! PostgreSQL refuses to run as root. Under root (CI, this machine) `initdb` and
//! `postgres` run as the `postgres` system user the package creates: the temporary
//! directory is handed to that user and the child processes get its uid and gid
//! (std's `CommandExt::uid`, which also drops root's supplementary groups). No
//! `su`/`runuser` wrapper sits in between, so the child is the postmaster itself and
//! a signal to it stops the server.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::free_port;

/// The superuser the cluster is created with, and its password (host connections
/// need it: scram-sha-256, so the applier's URL really carries a password).
pub const USER: &str = "warden";
/// The password of [`USER`].
pub const PASSWORD: &str = "pg-test-secret-7f3a";

/// A running PostgreSQL server; stopped (fast shutdown) on drop.
pub struct Postgres {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// The directory holding `initdb` and `postgres`: `$WARDEN_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("WARDEN_PG_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
                .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists() && bin.join("postgres").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!("no PostgreSQL under {}: `source .ci/setup.sh` installs Debian's postgresql", root.display()),
    }
}

/// `(uid, gid)` to run the server as: the `postgres` user under root, else `None` (as is).
fn server_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return None;
    }
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Some((uid, gid)),
        _ => {
            panic!("running as root and there is no `postgres` user to run PostgreSQL as (Debian's package creates it)")
        }
    }
}

fn as_server_user(cmd: &mut Command, user: Option<(u32, u32)>, dir: &Path) {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    // The test's working directory may be closed to that user; initdb resolves paths.
    cmd.current_dir(dir);
}

impl Postgres {
    /// Creates a cluster and starts the server; waits until it accepts connections.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let user = server_user();
        let dir = tempfile::Builder::new().prefix("warden-pg").tempdir().expect("temp dir");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).expect("write pwfile");
        if let Some((uid, gid)) = user {
            for p in [dir.path(), &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot hand {} to the postgres user: {e}", p.display()));
            }
        }
        let data = dir.path().join("data");
        let log = dir.path().join("initdb.log");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--pwfile"])
            .arg(&pwfile)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("initdb log"));
        as_server_user(&mut initdb, user, dir.path());
        let status = initdb.status().unwrap_or_else(|e| panic!("cannot run {}/initdb: {e}", bin.display()));
        assert!(status.success(), "initdb failed: {}", std::fs::read_to_string(&log).unwrap_or_default());

        let port = free_port();
        let log = dir.path().join("postgres.log");
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            // A throwaway cluster: durability buys nothing here.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("postgres log"));
        as_server_user(&mut server, user, dir.path());
        let child = server.spawn().unwrap_or_else(|e| panic!("cannot start {}/postgres: {e}", bin.display()));
        let mut pg = Postgres { child: Some(child), port, dir };
        pg.wait_ready(Duration::from_secs(30));
        pg
    }

    fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let err = match postgres::Client::connect(&self.url(), postgres::NoTls) {
                Ok(_) => return,
                Err(e) => e,
            };
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("postgres exited with {status} before accepting connections:\n{}", self.log_text());
            }
            if Instant::now() > deadline {
                panic!("postgres did not accept connections within {within:?} ({err}):\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `postgres://warden:PASSWORD@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/postgres", self.port)
    }

    /// A new client connection.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap_or_else(|e| panic!("connect to postgres: {e}"))
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // Fast shutdown: backends end, shared memory is released. SIGKILL only if it hangs.
        // Not `broker::signal`, which panics: a panic in a drop during a failing test aborts.
        let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
