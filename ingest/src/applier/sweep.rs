//! The periodic sweep: escalates executions that keep running after the grace period
//! (cancel → terminate), and ends commands whose `expires_at` has passed.

use std::time::Duration;

use postgres::Client;

use super::apply::{self, End, ESCALATING};

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Rows escalated from cancel to terminate.
    pub escalated: u64,
    /// Commands ended by expiry.
    pub expired: u64,
}

/// At most this many commands are ended per sweep, so one sweep stays short; the next
/// one takes the rest.
const BATCH: i64 = 500;

/// One sweep. Escalation goes first: a target still running when its command expires
/// has nothing left to escalate.
pub fn sweep(client: &mut Client, grace: Duration) -> Result<Swept, postgres::Error> {
    let mut swept = Swept::default();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    for (table, id_col, at_col) in ESCALATING {
        // The engine's heartbeat says the target ran after it should have stopped.
        // Table and column names are constants, never input.
        let sql = format!(
            "WITH e AS (UPDATE {table} h SET mode = 'terminate', escalated_at = now()
                 FROM target_activity a
                 WHERE h.state = 'active' AND h.mode = 'cancel' AND h.expires_at > now()
                   AND a.tenant_id = h.tenant_id AND a.target_kind = h.target_kind AND a.target_id = h.{id_col}
                   AND a.last_seen_at > h.{at_col} + $1::bigint * interval '1 millisecond'
                 RETURNING h.command_id)
             INSERT INTO killswitch_history (command_id, event, detail)
             SELECT command_id, 'escalated', 'target active after the grace period' FROM e"
        );
        swept.escalated += client.execute(&sql, &[&grace_ms])?;
    }
    let due: Vec<String> = client
        .query(
            "SELECT command_id FROM processed_commands WHERE state = 'active' AND expires_at <= now()
             ORDER BY expires_at LIMIT $1",
            &[&BATCH],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in due {
        // One transaction per command, like applying it; `end` re-checks under a row
        // lock, so a revert or another applier's sweep in between is not undone twice.
        let mut tx = client.transaction()?;
        if apply::end(&mut tx, &id, End::Expired)?.is_some() {
            swept.expired += 1;
            tracing::info!(command_id = %id, "kill-switch command expired");
        }
        tx.commit()?;
    }
    Ok(swept)
}
