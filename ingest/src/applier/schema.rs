//! The applier's schema: the numbered SQL files of `deploy/postgres/`, compiled into
//! the binary and applied at start, each once, recorded in `schema_migrations`.

use postgres::Client;

/// Every migration, in order: (version, name, SQL). A new one is appended here and
/// as `deploy/postgres/NNNN_name.sql`; an applied one is never edited.
const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "0001_init", include_str!("../../../deploy/postgres/0001_init.sql"))];

/// Any constant shared by every applier: the key of the advisory lock that makes
/// two appliers starting at once run the migrations one after the other.
const MIGRATION_LOCK: i64 = 0x7761_7264_656e_0001;

/// Applies the migrations not yet recorded; returns how many ran.
pub fn migrate(client: &mut Client) -> Result<usize, postgres::Error> {
    let mut tx = client.transaction()?;
    // Transaction-scoped: released by the commit (or by the rollback of a failure).
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // `IF NOT EXISTS` skips are expected, not news for the log.
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let mut ran = 0;
    for (version, name, sql) in MIGRATIONS {
        if tx.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version])?.is_some() {
            continue;
        }
        // DDL is transactional in PostgreSQL: a failing migration leaves nothing behind.
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name])?;
        tracing::info!(version, name, "applied schema migration");
        ran += 1;
    }
    tx.commit()?;
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_increase_and_match_file_names() {
        for (i, (version, name, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, i + 1);
            assert!(name.starts_with(&format!("{version:04}_")), "{name}");
            assert!(!sql.trim().is_empty());
        }
    }
}
