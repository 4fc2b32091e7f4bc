//! `--revert COMMAND_ID --by WHO --why TEXT`: an operator ends a command before it
//! expires, undoing what it changed, and says who and why. Running it twice changes
//! nothing the second time.

use postgres::Client;

use super::apply::{self, End};

/// What a revert did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reverted {
    /// Reverted now; `undid` is false when the command had expired or changed nothing.
    Now {
        /// Whether anything was undone.
        undid: bool,
    },
    /// An earlier revert did it (by whom, why).
    Already(String, String),
    /// No command with that id was applied here.
    Unknown,
}

/// Reverts `command_id` in one transaction.
pub fn revert(client: &mut Client, command_id: &str, by: &str, why: &str) -> Result<Reverted, postgres::Error> {
    let mut tx = client.transaction()?;
    // Lock the command's row first: a concurrent revert or sweep waits, then sees ours.
    if tx.query_opt("SELECT 1 FROM processed_commands WHERE command_id = $1 FOR UPDATE", &[&command_id])?.is_none() {
        return Ok(Reverted::Unknown);
    }
    if let Some(r) = tx.query_opt("SELECT reverted_by, why FROM reverts WHERE command_id = $1", &[&command_id])? {
        return Ok(Reverted::Already(r.get(0), r.get(1)));
    }
    let undid = apply::end(&mut tx, command_id, End::Reverted)?;
    if undid.is_none() {
        // Expired already: nothing to undo, but the operator's call is still recorded.
        apply::history(&mut tx, command_id, "reverted", "already expired; nothing to undo")?;
    }
    let undid = undid.unwrap_or(false);
    tx.execute(
        "INSERT INTO reverts (command_id, reverted_by, why, undid) VALUES ($1, $2, $3, $4)",
        &[&command_id, &by, &why, &undid],
    )?;
    tx.commit()?;
    Ok(Reverted::Now { undid })
}
