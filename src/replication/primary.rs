//! What the primary answers a replica's `GET /internal/v1/state`: the
//! changes after the replica's version when its history is the primary's,
//! a snapshot otherwise. The HTTP handler (`http::replication`) adds the
//! long-poll and the headers.

use super::log::{ChangeLog, LogError, Position};
use super::{ChangesDocument, MAX_CHANGE_BYTES, MAX_CHANGES};

/// Where a replica says it stands.
#[derive(Debug, Default)]
pub struct Asked {
    pub since: u64,
    /// Absent from replicas before 0.2: they always get a snapshot.
    pub epoch: Option<String>,
    pub hash: Option<String>,
}

/// The answer, before any waiting.
#[derive(Debug)]
pub enum Answer {
    /// The replica's history is ours and the log holds what follows it.
    Continue,
    /// A new, lagging, diverged or foreign replica, or an old one.
    Snapshot,
}

/// Whether the replica can go on with changes.
pub fn decide(log: &ChangeLog, asked: &Asked) -> Result<Answer, LogError> {
    let (Some(epoch), Some(hash)) = (&asked.epoch, &asked.hash) else {
        return Ok(Answer::Snapshot);
    };
    if epoch != log.epoch() {
        return Ok(Answer::Snapshot);
    }
    let position = Position {
        version: asked.since,
        hash: hash.clone(),
    };
    Ok(if log.continues(&position)? {
        Answer::Continue
    } else {
        Answer::Snapshot
    })
}

/// What follows a replica's version.
#[derive(Debug)]
pub enum Changes {
    /// The changes right after it, in order.
    Follow(ChangesDocument),
    /// Compaction removed some since `decide`: the replica needs a snapshot.
    Gap,
}

/// The changes after `since` (at most `MAX_CHANGES`, and about
/// `MAX_CHANGE_BYTES`), or `None` if there are none yet.
pub fn changes_after(
    log: &ChangeLog,
    since: u64,
    issuer: &str,
    jwks_max_age: u64,
) -> Result<Option<Changes>, LogError> {
    let changes = log.after_within(since, MAX_CHANGES, MAX_CHANGE_BYTES)?;
    let Some(last) = changes.last() else {
        return Ok(None);
    };
    if changes.first().map(|e| e.version) != since.checked_add(1) {
        return Ok(Some(Changes::Gap));
    }
    Ok(Some(Changes::Follow(ChangesDocument {
        epoch: log.epoch().to_string(),
        version: last.version,
        hash: last.hash.clone(),
        issuer: issuer.to_string(),
        jwks_max_age,
        changes,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::Change;
    use crate::store::Store;

    /// Compaction between `decide` and reading the range must not yield
    /// changes that skip some: the answer is a gap (then a snapshot).
    #[test]
    fn a_range_cut_by_compaction_is_a_gap_not_fewer_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for n in 0..10u8 {
            let id = crate::crypto::b64url(&[n; 16]);
            store.commit(None, Change::RevokeApiKey { id }).unwrap();
        }
        let follow = |since| changes_after(&store.changes, since, "i", 0).unwrap();
        assert!(matches!(follow(2), Some(Changes::Follow(d)) if d.changes[0].version == 3));
        store.changes.compact(4).unwrap();
        assert!(matches!(follow(2), Some(Changes::Gap)));
        assert!(matches!(follow(6), Some(Changes::Follow(d)) if d.version == 10));
        assert!(follow(10).is_none());
    }

    /// Large records come a bounded number of bytes at a time, and the
    /// replica reaches the end by asking again.
    #[test]
    fn an_answer_stops_near_its_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let big = "x".repeat(200 * 1024);
        for n in 0..12 {
            let change = Change::RemoveApplication {
                client_id: format!("{n}{big}"),
            };
            store.commit(None, change).unwrap();
        }
        let mut since = 0;
        let mut answers = 0;
        while let Some(Changes::Follow(document)) =
            changes_after(&store.changes, since, "i", 0).unwrap()
        {
            let bytes = serde_json::to_vec(&document.changes).unwrap().len();
            assert!(
                bytes < MAX_CHANGE_BYTES + 210 * 1024,
                "{bytes} bytes in one answer"
            );
            assert_eq!(document.changes[0].version, since + 1);
            since = document.version;
            answers += 1;
        }
        // Six of ~205 KiB pass the 1 MiB budget: two answers.
        assert_eq!((since, answers), (12, 2));
    }
}
