//! Console sessions, held in memory only: a restart signs everyone out.
//!
//! A session is named by a 256-bit random cookie value; the table keeps
//! its SHA-256, never the value itself. Each session has its own CSRF
//! token, compared in constant time. A session ends after
//! `console_idle_timeout` without a request, at `console_session_lifetime`
//! whatever happens, or when signed out. Time is passed in.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::crypto::{RandomnessUnavailable, b64url, constant_time_eq, random_bytes, sha256};

/// At most this many sessions at once: signing in past it ends the one
/// idle longest, so that sign-ins (which need the admin token) cannot
/// grow memory without bound.
pub const MAX_SESSIONS: usize = 256;

/// What a signed-in browser holds on the server.
#[derive(Debug, Clone)]
pub struct Session {
    /// The per-session token every state-changing form carries.
    pub csrf: String,
    /// The fingerprint of the admin token it signed in with (audit actor
    /// `ui:<fingerprint>`).
    pub fingerprint: String,
    /// A message for the next page (what the last action did), shown once.
    pub flash: Option<String>,
    /// The digest of its cookie: the table's key.
    key: [u8; 32],
    created: i64,
    last_seen: i64,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), presented.as_bytes())
    }

    /// The audit actor of actions taken in this session.
    pub fn actor(&self) -> String {
        format!("ui:{}", self.fingerprint)
    }
}

pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
    idle_secs: i64,
    lifetime_secs: i64,
}

impl Sessions {
    pub fn new(idle_secs: u64, lifetime_secs: u64) -> Self {
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        Self {
            table: Mutex::new(HashMap::new()),
            idle_secs: secs(idle_secs),
            lifetime_secs: secs(lifetime_secs),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self, session: &Session, now: i64) -> bool {
        now < session.last_seen.saturating_add(self.idle_secs)
            && now < session.created.saturating_add(self.lifetime_secs)
    }

    /// A new session: its cookie value (given to the browser, never kept)
    /// and the session. Always a fresh name, so that a name planted in a
    /// browser before sign-in (session fixation) never becomes signed in.
    pub fn start(
        &self,
        fingerprint: String,
        now: i64,
    ) -> Result<(String, Session), RandomnessUnavailable> {
        let cookie = b64url(&random_bytes::<32>()?);
        let session = Session {
            csrf: b64url(&random_bytes::<32>()?),
            fingerprint,
            flash: None,
            key: sha256(cookie.as_bytes()),
            created: now,
            last_seen: now,
        };
        let mut table = self.lock();
        table.retain(|_, s| self.live(s, now));
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(session.key, session.clone());
        Ok((cookie, session))
    }

    /// The live session named by `cookie`, its idle clock restarted and
    /// its flash message taken; an expired one is removed.
    pub fn resume(&self, cookie: &str, now: i64) -> Option<Session> {
        let key = sha256(cookie.as_bytes());
        let mut table = self.lock();
        let session = table.get_mut(&key)?;
        if !self.live(session, now) {
            table.remove(&key);
            return None;
        }
        session.last_seen = now;
        let resumed = session.clone();
        session.flash = None;
        Some(resumed)
    }

    /// Leaves `message` for the session's next page.
    pub fn flash(&self, session: &Session, message: String) {
        if let Some(stored) = self.lock().get_mut(&session.key) {
            stored.flash = Some(message);
        }
    }

    /// Ends `session` (signing out).
    pub fn end_session(&self, session: &Session) {
        self.lock().remove(&session.key);
    }

    /// Signs out: the name stops working at once.
    pub fn end(&self, cookie: &str) {
        self.lock().remove(&sha256(cookie.as_bytes()));
    }

    /// How many sessions are held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_when_idle() {
        let sessions = Sessions::new(60, 3600);
        let (cookie, _) = sessions.start("fp".into(), 1000).unwrap();
        assert!(sessions.resume(&cookie, 1059).is_some());
        // Each request restarts the idle clock.
        assert!(sessions.resume(&cookie, 1118).is_some());
        assert!(sessions.resume(&cookie, 1178).is_none());
        assert!(sessions.resume(&cookie, 1179).is_none(), "removed");
        assert!(sessions.is_empty());
    }

    #[test]
    fn a_busy_session_still_ends_at_its_lifetime() {
        let sessions = Sessions::new(60, 300);
        let (cookie, _) = sessions.start("fp".into(), 0).unwrap();
        for now in (30..300).step_by(30) {
            assert!(sessions.resume(&cookie, now).is_some(), "{now}");
        }
        assert!(sessions.resume(&cookie, 300).is_none());
    }

    #[test]
    fn signing_out_ends_only_that_session() {
        let sessions = Sessions::new(60, 300);
        let (a, _) = sessions.start("fp".into(), 0).unwrap();
        let (b, _) = sessions.start("fp".into(), 0).unwrap();
        assert_ne!(a, b);
        sessions.end(&a);
        assert!(sessions.resume(&a, 1).is_none());
        assert!(sessions.resume(&b, 1).is_some());
    }

    #[test]
    fn a_flash_message_is_shown_once() {
        let sessions = Sessions::new(60, 300);
        let (cookie, session) = sessions.start("fp".into(), 0).unwrap();
        sessions.flash(&session, "done".into());
        assert_eq!(
            sessions.resume(&cookie, 1).unwrap().flash.as_deref(),
            Some("done")
        );
        assert_eq!(sessions.resume(&cookie, 2).unwrap().flash, None);
    }

    #[test]
    fn names_and_csrf_tokens_are_random_and_unguessable() {
        let sessions = Sessions::new(60, 300);
        let (cookie, session) = sessions.start("fp".into(), 0).unwrap();
        assert_eq!(cookie.len(), 43, "256 bits");
        assert_ne!(cookie, session.csrf);
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&cookie));
        assert!(sessions.resume("made-up", 1).is_none());
        assert_eq!(session.actor(), "ui:fp");
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::new(600, 3600);
        let (first, _) = sessions.start("fp".into(), 0).unwrap();
        for i in 0..MAX_SESSIONS {
            sessions.start("fp".into(), 1 + i as i64).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(
            sessions.resume(&first, 500).is_none(),
            "the longest idle went"
        );
    }
}
