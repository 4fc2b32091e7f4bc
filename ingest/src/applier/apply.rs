//! One command, one transaction: claim its `command_id` in `processed_commands`, make
//! the change, record what changed; and [`end`], which undoes exactly that change when
//! the command expires or is reverted.

use std::time::Duration;

use postgres::{Client, Transaction};
use warden_schemas::Action;

use super::command::Accepted;

/// Where a message came from, stored with what it caused.
#[derive(Clone, Debug)]
pub struct Source {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// What applying a command did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied now; the `outcome` stored with it.
    Applied(&'static str),
    /// Its `command_id` was already processed: nothing changed.
    Duplicate,
}

/// The table a target-row action writes.
struct Table {
    name: &'static str,
    id_col: &'static str,
    at_col: &'static str,
    /// Executions (sessions, jobs) have a cancel/terminate mode; tools do not.
    has_mode: bool,
    /// The stored outcome, and the one when the row starts escalated.
    outcome: (&'static str, &'static str),
}

fn table_of(action: Action) -> Option<Table> {
    let t = |name, id_col, at_col, has_mode, outcome| Some(Table { name, id_col, at_col, has_mode, outcome });
    match action {
        Action::HaltSession => t("halted_sessions", "session_id", "halted_at", true, ("halted", "halted_terminate")),
        Action::KillJob => t("killed_jobs", "job_id", "killed_at", true, ("killed", "killed_terminate")),
        Action::DisableTool => t("disabled_tools", "tool", "disabled_at", false, ("tool_disabled", "tool_disabled")),
        _ => None,
    }
}

/// The tables whose executions escalate from cancel to terminate.
pub const ESCALATING: [(&str, &str, &str); 2] =
    [("halted_sessions", "session_id", "halted_at"), ("killed_jobs", "job_id", "killed_at")];

/// Applies `a` in one transaction, unless its `command_id` was processed before.
pub fn apply(client: &mut Client, a: &Accepted, grace: Duration, source: &Source) -> Result<Outcome, postgres::Error> {
    let c = &a.cmd;
    let mut tx = client.transaction()?;
    // The claim comes first: a concurrent applier inserting the same id waits on this
    // row's lock, then finds it taken. `outcome` is filled in below, before commit.
    let claimed = tx.execute(
        "INSERT INTO processed_commands (command_id, tenant_id, action, target_kind, target_id, rule, key_id,
             issued_at_ms, ttl_ms, applied_at, expires_at, outcome, changed, state,
             source_topic, source_partition, source_offset)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now() + $9::bigint * interval '1 millisecond', '', false,
             'active', $10, $11, $12)
         ON CONFLICT (command_id) DO NOTHING",
        &[
            &c.command_id,
            &a.tenant,
            &c.action.as_str(),
            &c.target.kind,
            &c.target.id,
            &c.rule,
            &a.key_id,
            &c.issued_at,
            &a.ttl_ms,
            &source.topic,
            &source.partition,
            &source.offset,
        ],
    )?;
    if claimed == 0 {
        tx.rollback()?;
        return Ok(Outcome::Duplicate);
    }
    let (outcome, changed, previous) = match table_of(c.action) {
        Some(table) => (insert_target_row(&mut tx, a, &table, grace)?, true, None),
        None => disable_workflow(&mut tx, a)?,
    };
    tx.execute(
        "UPDATE processed_commands SET outcome = $2, changed = $3, previous_disabled_by = $4 WHERE command_id = $1",
        &[&c.command_id, &outcome, &changed, &previous],
    )?;
    history(&mut tx, &c.command_id, "applied", outcome)?;
    tx.commit()?;
    Ok(Outcome::Applied(outcome))
}

/// `disable_workflow`: disables the workflow if it is enabled, or takes it over from
/// an earlier command still in force (so it stays disabled until the later of the two
/// ends). A workflow disabled by anyone else is left alone, and so never re-enabled.
fn disable_workflow(
    tx: &mut Transaction<'_>,
    a: &Accepted,
) -> Result<(&'static str, bool, Option<String>), postgres::Error> {
    let (tenant, id, cmd) = (&a.tenant, &a.cmd.target.id, &a.cmd.command_id);
    let row = tx.query_opt(
        "SELECT w.is_enabled, w.disabled_by,
                EXISTS (SELECT 1 FROM processed_commands p WHERE p.command_id = w.disabled_by AND p.state = 'active')
         FROM workflows w WHERE w.tenant_id = $1 AND w.id = $2 FOR UPDATE",
        &[tenant, id],
    )?;
    let Some(row) = row else {
        return Ok(("no_such_workflow", false, None));
    };
    let (enabled, by, by_active): (bool, Option<String>, bool) = (row.get(0), row.get(1), row.get(2));
    let (outcome, previous) = match (enabled, by) {
        (true, _) => ("disabled", None),
        (false, Some(prev)) if by_active => ("took_over", Some(prev)),
        (false, _) => return Ok(("already_disabled", false, None)),
    };
    tx.execute(
        "UPDATE workflows SET is_enabled = false, disabled_by = $3 WHERE tenant_id = $1 AND id = $2",
        &[tenant, id, cmd],
    )?;
    Ok((outcome, true, previous))
}

/// `halt_session`, `kill_job`, `disable_tool`: one row in the action's table. An
/// execution that an earlier command has been cancelling for longer than `grace`
/// is escalated to `terminate`, with the new row.
fn insert_target_row(
    tx: &mut Transaction<'_>,
    a: &Accepted,
    t: &Table,
    grace: Duration,
) -> Result<&'static str, postgres::Error> {
    let (cmd, tenant, kind, id) = (&a.cmd.command_id, &a.tenant, &a.cmd.target.kind, &a.cmd.target.id);
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let mut escalated = 0;
    if t.has_mode {
        // Table and column names are constants of this file, never input.
        let sql = format!(
            "WITH e AS (UPDATE {0} SET mode = 'terminate', escalated_at = now()
                 WHERE tenant_id = $1 AND target_kind = $2 AND {1} = $3 AND state = 'active' AND mode = 'cancel'
                   AND {2} + $4::bigint * interval '1 millisecond' <= now()
                 RETURNING command_id)
             INSERT INTO killswitch_history (command_id, event, detail)
             SELECT command_id, 'escalated', 'a later command for the same target after the grace period' FROM e",
            t.name, t.id_col, t.at_col
        );
        escalated = tx.execute(&sql, &[tenant, kind, id, &grace_ms])?;
    }
    let mode = if escalated > 0 { "'terminate', now()" } else { "'cancel', NULL" };
    let (mode_cols, mode_vals) =
        if t.has_mode { (", mode, escalated_at", format!(", {mode}")) } else { ("", String::new()) };
    let sql = format!(
        "INSERT INTO {0} (command_id, tenant_id, {1}, target_kind, reason, {2}, expires_at, state{mode_cols})
         SELECT command_id, tenant_id, target_id, target_kind, $2, applied_at, expires_at, 'active'{mode_vals}
         FROM processed_commands WHERE command_id = $1",
        t.name, t.id_col, t.at_col
    );
    tx.execute(&sql, &[cmd, &a.cmd.reason])?;
    Ok(if escalated > 0 { t.outcome.1 } else { t.outcome.0 })
}

/// Why a command stops being in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Its `expires_at` passed.
    Expired,
    /// An operator reverted it.
    Reverted,
}

impl End {
    fn state(self) -> &'static str {
        match self {
            End::Expired => "expired",
            End::Reverted => "reverted",
        }
    }
}

/// Ends `command_id` if it is in force: undoes what applying it changed, marks it and
/// its row with `why`, and records it in the history. `None` when it was not in force;
/// else whether anything was undone.
pub fn end(tx: &mut Transaction<'_>, command_id: &str, why: End) -> Result<Option<bool>, postgres::Error> {
    let row = tx.query_opt(
        "SELECT action, tenant_id, target_id, changed, previous_disabled_by,
                EXISTS (SELECT 1 FROM processed_commands q WHERE q.command_id = p.previous_disabled_by
                        AND q.state = 'active')
         FROM processed_commands p WHERE command_id = $1 AND state = 'active' FOR UPDATE",
        &[&command_id],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (action, tenant, target, changed): (String, String, String, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (previous, previous_active): (Option<String>, bool) = (row.get(4), row.get(5));
    let (undid, detail) = if action == Action::DisableWorkflow.as_str() {
        if !changed {
            (false, "nothing to undo")
        } else if let (Some(prev), true) = (&previous, previous_active) {
            // The command it took over from is still in force: hand the workflow back.
            let n = tx.execute(
                "UPDATE workflows SET disabled_by = $4
                 WHERE tenant_id = $1 AND id = $2 AND disabled_by = $3 AND NOT is_enabled",
                &[&tenant, &target, &command_id, prev],
            )?;
            (
                n > 0,
                if n > 0 {
                    "workflow handed back to the command it took over from"
                } else {
                    "workflow no longer disabled by this command"
                },
            )
        } else {
            // Only if it is still this command's doing: a person may have changed it since.
            let n = tx.execute(
                "UPDATE workflows SET is_enabled = true, disabled_by = NULL
                 WHERE tenant_id = $1 AND id = $2 AND disabled_by = $3 AND NOT is_enabled",
                &[&tenant, &target, &command_id],
            )?;
            (
                n > 0,
                if n > 0 {
                    "workflow re-enabled"
                } else {
                    "workflow no longer disabled by this command; left as it is"
                },
            )
        }
    } else {
        let table = ["halted_sessions", "killed_jobs", "disabled_tools"]
            .into_iter()
            .zip([Action::HaltSession, Action::KillJob, Action::DisableTool])
            .find_map(|(t, a)| (a.as_str() == action).then_some(t));
        let n = match table {
            Some(t) => tx.execute(
                &format!("UPDATE {t} SET state = $2, ended_at = now() WHERE command_id = $1 AND state = 'active'"),
                &[&command_id, &why.state()],
            )?,
            None => 0,
        };
        (n > 0, if n > 0 { "row ended" } else { "nothing to undo" })
    };
    tx.execute(
        "UPDATE processed_commands SET state = $2, ended_at = now() WHERE command_id = $1",
        &[&command_id, &why.state()],
    )?;
    history(tx, command_id, why.state(), detail)?;
    Ok(Some(undid))
}

/// One line of the audit trail.
pub fn history(tx: &mut Transaction<'_>, command_id: &str, event: &str, detail: &str) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO killswitch_history (command_id, event, detail) VALUES ($1, $2, $3)",
        &[&command_id, &event, &detail],
    )?;
    Ok(())
}

/// Records a refused message, once per Kafka position.
pub fn reject(client: &mut Client, r: &super::command::Rejection, source: &Source) -> Result<(), postgres::Error> {
    client.execute(
        "INSERT INTO rejected_commands (command_id, tenant_id, reason, source_topic, source_partition, source_offset)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING",
        &[&r.command_id, &r.tenant, &r.reason, &source.topic, &source.partition, &source.offset],
    )?;
    Ok(())
}
