//! The key directory on disk: one PKCS#8 PEM file per key, the `active`
//! file naming the signer, and the schedule beside them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ring::signature::KeyPair;

use super::{KeyError, KeyForm, KeySet, KeyState, io_error, pkcs8, thumbprint};
use crate::crypto::jwt_provider;
use crate::private_files::{create_private_dir, sync_dir, write_private_file};

const ACTIVE_FILE: &str = "active";
const PEM_LABEL: &str = "PRIVATE KEY";

/// One Ed25519 key as found on disk.
pub struct StoredKey {
    pub kid: String,
    pub created: SystemTime,
    pub active: bool,
    /// The file it was read from (any `*.pem` name).
    pub path: PathBuf,
    pub form: KeyForm,
    pub(super) pkcs8: Vec<u8>,
    pub(super) public: Vec<u8>,
}

/// The key directory.
pub struct KeyDir {
    pub(super) path: PathBuf,
}

impl KeyDir {
    /// Opens `path`, creating it (mode 0700) if needed.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        create_private_dir(path).map_err(io_error(path))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Removes temp files a crash left (`.<name>.<nonce>.tmp`): one may
    /// hold a seed, and a retired key must leave no copy behind.
    pub fn remove_leftovers(&self) -> Result<(), KeyError> {
        for entry in fs::read_dir(&self.path).map_err(io_error(&self.path))? {
            let path = entry.map_err(io_error(&self.path))?.path();
            let leftover = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"));
            if leftover {
                fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        Ok(())
    }

    /// Every key in the directory, oldest first.
    /// A `*.pem` that is no Ed25519 key (a stray certificate, a file a
    /// crash cut short) is left out, loudly, rather than stopping the node.
    pub fn list(&self) -> Result<Vec<StoredKey>, KeyError> {
        let active = fs::read_to_string(self.path.join(ACTIVE_FILE))
            .map(|s| s.trim().to_string())
            .ok();
        let mut keys = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(io_error(&self.path))? {
            let path = entry.map_err(io_error(&self.path))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                continue;
            }
            match read_key(&path) {
                Ok(Some((pkcs8, form, public, created))) => {
                    let kid = thumbprint(&public);
                    keys.push(StoredKey {
                        active: active.as_deref() == Some(kid.as_str()),
                        kid,
                        created,
                        pkcs8,
                        public,
                        path,
                        form,
                    });
                }
                Ok(None) => log::error!(
                    "key file {} is not a PKCS#8 Ed25519 private key in PEM form: left out",
                    path.display()
                ),
                Err(e) => return Err(e),
            }
        }
        keys.sort_by(|a, b| a.created.cmp(&b.created).then(a.kid.cmp(&b.kid)));
        Ok(keys)
    }

    /// Writes a new key (mode 0600, standard form). It verifies at once
    /// but signs only once activated.
    pub fn generate(&self) -> Result<String, KeyError> {
        let pkcs8 = pkcs8::generate().map_err(|_| KeyError::Generation)?;
        let pair = jwt_provider::ed25519_key_pair(&pkcs8).map_err(|_| KeyError::Generation)?;
        let kid = thumbprint(pair.public_key().as_ref());
        // Whole or not at all: a crash leaves a temp file, never half a key.
        self.replace_file(&format!("{kid}.pem"), pem_encode(&pkcs8).as_bytes())?;
        Ok(kid)
    }

    /// Makes `kid` the signing key.
    pub fn activate(&self, kid: &str) -> Result<(), KeyError> {
        if !self.list()?.iter().any(|k| k.kid == kid) {
            return Err(KeyError::UnknownKid(kid.to_string()));
        }
        self.replace_file(ACTIVE_FILE, format!("{kid}\n").as_bytes())
    }

    /// Rewrites every key file still in the legacy form in the standard
    /// form: same seed, so the same kid, and the file keeps its name and
    /// modification time (its `created`). Returns the kids rewritten.
    pub fn migrate(&self) -> Result<Vec<String>, KeyError> {
        let mut migrated = Vec::new();
        for key in self.list()? {
            if key.form == KeyForm::Standard {
                continue;
            }
            let malformed = || KeyError::Malformed(key.path.clone());
            let standard = pkcs8::to_standard(&key.pkcs8).ok_or_else(malformed)?;
            let pair = jwt_provider::ed25519_key_pair(&standard).map_err(|_| malformed())?;
            if pair.public_key().as_ref() != key.public.as_slice() {
                return Err(malformed());
            }
            let name = key
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(malformed)?;
            self.replace_file_as(name, pem_encode(&standard).as_bytes(), Some(key.created))?;
            migrated.push(key.kid);
        }
        Ok(migrated)
    }

    /// Replaces `name` in the directory whole: a unique temp file, synced,
    /// renamed over it, and the directory synced so the rename lasts.
    pub(super) fn replace_file(&self, name: &str, contents: &[u8]) -> Result<(), KeyError> {
        self.replace_file_as(name, contents, None)
    }

    pub(super) fn replace_file_as(
        &self,
        name: &str,
        contents: &[u8],
        modified: Option<SystemTime>,
    ) -> Result<(), KeyError> {
        // A temp file of its own, so that one left by a crash between write
        // and rename (never read: it is no `*.pem`) cannot block this one.
        let nonce = crate::crypto::random_id().map_err(|_| KeyError::Generation)?;
        let tmp = self.path.join(format!(".{name}.{nonce}.tmp"));
        write_private_file(&tmp, contents).map_err(io_error(&tmp))?;
        if let Some(time) = modified {
            let stamped = fs::OpenOptions::new()
                .write(true)
                .open(&tmp)
                .and_then(|file| file.set_modified(time).and_then(|()| file.sync_all()));
            if let Err(e) = stamped {
                let _ = fs::remove_file(&tmp);
                return Err(io_error(&tmp)(e));
            }
        }
        let target = self.path.join(name);
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(&target)(e));
        }
        sync_dir(&self.path).map_err(io_error(&self.path))
    }

    /// Retires `kid` everywhere: its file goes, so it neither verifies nor
    /// signs here, and replicas drop it with the next state they get. The
    /// signing key cannot be retired; rotate first.
    /// Every file holding the key goes, whatever its name (a backup copy,
    /// an imported `*.pem`): a key is known by its thumbprint, not its name.
    pub fn retire(&self, kid: &str) -> Result<(), KeyError> {
        let copies: Vec<StoredKey> = self.list()?.into_iter().filter(|k| k.kid == kid).collect();
        if copies.is_empty() {
            return Err(KeyError::UnknownKid(kid.to_string()));
        }
        if copies.iter().any(|k| k.active) {
            return Err(KeyError::Active(kid.to_string()));
        }
        for copy in &copies {
            fs::remove_file(&copy.path).map_err(io_error(&copy.path))?;
        }
        sync_dir(&self.path).map_err(io_error(&self.path))?;
        let left = self.list()?;
        if left.iter().any(|k| k.kid == kid) {
            return Err(KeyError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(format!("key {kid} is still present")),
            });
        }
        let mut schedule = self.schedule();
        schedule.retain_present(&left);
        self.write_schedule(&schedule)
    }

    /// Generates a key and signs with it from `now` on, at once: for a
    /// stopped node. A running fleet rotates through the admin API, which
    /// waits for caches first.
    pub fn rotate(&self, now: DateTime<Utc>) -> Result<String, KeyError> {
        let kid = self.generate()?;
        self.hand_over(&kid, now)?;
        Ok(kid)
    }

    /// Makes `kid` the signer from `now`, and records it: it signs since
    /// now, and the key it replaces verifies only since now.
    pub fn hand_over(&self, kid: &str, now: DateTime<Utc>) -> Result<(), KeyError> {
        let keys = self.list()?;
        let previous = keys.iter().find(|k| k.active).map(|k| k.kid.clone());
        // `active` first: a crash before the schedule is written leaves the
        // old key without a `verify_only_since`, kept rather than dropped.
        self.activate(kid)?;
        let mut schedule = self.schedule();
        if let Some(previous) = previous.filter(|p| p != kid) {
            schedule.entry(&previous).verify_only_since = Some(now);
        }
        let times = schedule.entry(kid);
        times.published_at.get_or_insert(now);
        times.signing_since = Some(now);
        times.verify_only_since = None;
        schedule.retain_present(&keys);
        self.write_schedule(&schedule)
    }

    /// The keys already here, if any, signing with `signer`: a replica
    /// signs only with the key its primary names, and only if it holds it.
    pub fn load_existing_for(path: &Path, signer: &str) -> Result<Option<KeySet>, KeyError> {
        if !path.is_dir() {
            return Ok(None);
        }
        let keys = KeyDir {
            path: path.to_path_buf(),
        }
        .list()?;
        let held = keys.iter().any(|k| k.kid == signer);
        Ok(Some(KeySet::from_stored(&keys, held.then_some(signer))))
    }

    /// The keys already here, if any: a replica uses what is mounted and
    /// never generates a key of its own.
    pub fn load_existing(path: &Path) -> Result<Option<KeySet>, KeyError> {
        if !path.is_dir() {
            return Ok(None);
        }
        let keys = KeyDir {
            path: path.to_path_buf(),
        }
        .list()?;
        if keys.is_empty() {
            return Ok(None);
        }
        // Signs with the active key, else the newest.
        let signer = keys
            .iter()
            .find(|k| k.active)
            .or(keys.last())
            .map(|k| k.kid.clone());
        let set = KeySet::from_stored(&keys, signer.as_deref());
        Ok(Some(set))
    }

    /// The key set for a node. A directory without keys gets its first one;
    /// one without an active key signs with its newest.
    pub fn load_or_init(&self) -> Result<KeySet, KeyError> {
        let mut keys = self.list()?;
        if keys.is_empty() {
            let kid = self.generate()?;
            log::info!("generated signing key {kid} in {}", self.path.display());
            keys = self.list()?;
        }
        // Without an active key: the newest, but never one that is only
        // published (outside caches may not hold it yet), if there is another.
        if !keys.iter().any(|k| k.active) {
            let schedule = self.schedule();
            let newest = keys
                .iter()
                .rev()
                .find(|k| schedule.state(k) != KeyState::Published)
                .or(keys.last());
            if let Some(newest) = newest {
                self.activate(&newest.kid)?;
                keys = self.list()?;
            }
        }
        let active = keys.iter().find(|k| k.active).map(|k| k.kid.clone());
        Ok(KeySet::from_stored(&keys, active.as_deref()))
    }
}

/// (document, form, public key, mtime) of a key file; `None` if it holds
/// no Ed25519 key.
type KeyFile = (Vec<u8>, KeyForm, Vec<u8>, SystemTime);

fn read_key(path: &Path) -> Result<Option<KeyFile>, KeyError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let Some(pkcs8) = pem_decode(&text) else {
        return Ok(None);
    };
    let Some(form) = pkcs8::form(&pkcs8) else {
        return Ok(None);
    };
    let Ok(pair) = jwt_provider::ed25519_key_pair(&pkcs8) else {
        return Ok(None);
    };
    let public = pair.public_key().as_ref().to_vec();
    let created = fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(io_error(path))?;
    Ok(Some((pkcs8, form, public, created)))
}

fn pem_encode(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    pem
}

fn pem_decode(text: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    let body: String = text[start..stop].split_whitespace().collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::private_files::write_private_file;

    #[test]
    fn first_load_generates_one_private_key_and_activates_it() {
        jwt_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        let set = keys.load_or_init().unwrap();
        let stored = keys.list().unwrap();
        assert_eq!(stored.len(), 1);
        assert!(stored[0].active);
        assert_eq!(set.signer().unwrap().kid, stored[0].kid);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(format!("{}.pem", stored[0].kid));
            let mode = fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second load reuses the key.
        assert_eq!(
            keys.load_or_init().unwrap().signer().unwrap().kid,
            stored[0].kid
        );
    }

    #[test]
    fn generated_key_verifies_but_does_not_sign_until_activated() {
        jwt_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        let first = keys.load_or_init().unwrap().signer().unwrap().kid.clone();
        let second = keys.generate().unwrap();
        let set = keys.load_or_init().unwrap();
        assert_eq!(set.signer().unwrap().kid, first);
        assert!(set.verifier(&second).is_some());
        keys.activate(&second).unwrap();
        assert_eq!(keys.load_or_init().unwrap().signer().unwrap().kid, second);
    }

    /// A crash between writing the temp file and renaming it leaves the
    /// temp behind: neither start nor the next rotation minds.
    #[test]
    fn a_leftover_temp_file_blocks_nothing() {
        jwt_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        let first = keys.load_or_init().unwrap().signer().unwrap().kid.clone();
        fs::write(dir.path().join(".active.tmp"), "garbage").unwrap();
        fs::write(dir.path().join(".active.abc.tmp"), "garbage").unwrap();
        assert_eq!(keys.load_or_init().unwrap().signer().unwrap().kid, first);
        let second = keys.rotate(Utc::now()).unwrap();
        assert_eq!(keys.load_or_init().unwrap().signer().unwrap().kid, second);
        let third = keys.rotate(Utc::now()).unwrap();
        assert_eq!(keys.load_or_init().unwrap().signer().unwrap().kid, third);
    }

    /// A key is retired by its thumbprint: every file holding it goes,
    /// whatever the file is called.
    #[test]
    fn retiring_removes_every_copy_of_a_key() {
        jwt_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        let old = keys.load_or_init().unwrap().signer().unwrap().kid.clone();
        let pem = dir.path().join(format!("{old}.pem"));
        fs::copy(&pem, dir.path().join("backup.pem")).unwrap();
        fs::rename(&pem, dir.path().join("imported.pem")).unwrap();
        assert!(matches!(keys.retire(&old), Err(KeyError::Active(_))));
        let new = keys.rotate(Utc::now()).unwrap();
        keys.retire(&old).unwrap();
        let left: Vec<String> = keys.list().unwrap().into_iter().map(|k| k.kid).collect();
        assert_eq!(left, [new]);
        assert!(matches!(keys.retire(&old), Err(KeyError::UnknownKid(_))));
    }

    /// A directory written by earlier versions (ring's PKCS#8 v2 files)
    /// loads as it is, is listed as legacy, and migrates in place: same
    /// kids, same creation times, same signer, now in the standard form.
    #[test]
    fn legacy_key_files_load_and_migrate_without_changing_kids() {
        use ring::rand::SystemRandom;
        use ring::signature::Ed25519KeyPair;
        jwt_provider::install();
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b"] {
            let legacy = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            let path = dir.path().join(format!("{name}.pem"));
            write_private_file(&path, pem_encode(legacy.as_ref()).as_bytes()).unwrap();
        }
        let keys = KeyDir::open(dir.path()).unwrap();
        let signer = keys.load_or_init().unwrap().signer().unwrap().kid.clone();
        let before = keys.list().unwrap();
        assert!(before.iter().all(|k| k.form == KeyForm::Legacy));
        let migrated = keys.migrate().unwrap();
        assert_eq!(migrated.len(), 2);
        let after = keys.list().unwrap();
        assert!(after.iter().all(|k| k.form == KeyForm::Standard));
        let summary = |ks: &[StoredKey]| -> Vec<(String, SystemTime, bool, PathBuf)> {
            ks.iter()
                .map(|k| (k.kid.clone(), k.created, k.active, k.path.clone()))
                .collect()
        };
        assert_eq!(summary(&before), summary(&after));
        assert_eq!(keys.load_or_init().unwrap().signer().unwrap().kid, signer);
        assert!(
            keys.migrate().unwrap().is_empty(),
            "nothing left to migrate"
        );
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 3, "two keys and `active`, no temp files");
    }

    /// A stray or half-written `*.pem` is left out, not fatal; a crash's
    /// temp files go at start.
    #[test]
    fn unreadable_key_files_are_left_out_and_leftovers_removed() {
        jwt_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        let kid = keys.load_or_init().unwrap().signer().unwrap().kid.clone();
        fs::write(dir.path().join("empty.pem"), "").unwrap();
        fs::write(
            dir.path().join("cert.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        fs::write(dir.path().join(".x.pem.abc.tmp"), "seed").unwrap();
        let listed: Vec<String> = keys.list().unwrap().into_iter().map(|k| k.kid).collect();
        assert_eq!(listed, std::slice::from_ref(&kid));
        assert_eq!(keys.load_or_init().unwrap().signer().unwrap().kid, kid);
        keys.remove_leftovers().unwrap();
        assert!(!dir.path().join(".x.pem.abc.tmp").exists());
    }

    /// Without `active`, the newest key signs, but never one that is only
    /// published: outside caches may not hold it yet.
    #[test]
    fn a_lost_active_file_never_hands_signing_to_a_published_key() {
        jwt_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        let first = keys.load_or_init().unwrap().signer().unwrap().kid.clone();
        let published = keys.generate().unwrap();
        let mut schedule = keys.schedule();
        schedule.entry(&published).signs_at = Some(Utc::now());
        keys.write_schedule(&schedule).unwrap();
        fs::remove_file(dir.path().join(ACTIVE_FILE)).unwrap();
        assert_eq!(keys.load_or_init().unwrap().signer().unwrap().kid, first);
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn pem_round_trips() {
        let der: Vec<u8> = (0u8..=200).collect();
        assert_eq!(pem_decode(&pem_encode(&der)).unwrap(), der);
        assert!(pem_decode("not a pem").is_none());
    }
}
