//! Building and running a node: load keys, open the store, bootstrap the
//! admin token, bind, serve.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Condition, Logger};
use actix_web::{App, HttpServer, web};

use crate::admin::Admin;
use crate::applications::ApplicationRecord;
use crate::clock::Clock;
use crate::config::{Role, Settings};
use crate::crypto::{SecretDigest, install_providers, random_secret};
use crate::directory::Directory;
use crate::http::error::{ApiError, BodyError};
use crate::http::primary_relay::PrimaryRelay;
use crate::http::upstream::SessionUpstream;
use crate::http::{self, AppState};
use crate::issuer::{IssuerUrl, TokenIssuer};
use crate::keys::{KeyDir, KeyError, KeyForm, KeyRing, KeySet};
use crate::metrics::Metrics;
use crate::private_files::{create_private_dir, write_private_file};
use crate::replication::Change;
use crate::replication::follower::{Follower, SyncStatus};
use crate::revocation::parse_id;
use crate::store::{Store, StoreError};
use crate::throttle::Throttle;
use crate::verifier::{LEEWAY_SECS, Verifier};

/// Written once, on first start, when no admin token is configured.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
const ADMIN_TOKEN_PREFIX: &str = "gat_";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartupError {
    let context = context.into();
    move |source| StartupError::Io { context, source }
}

/// In-flight requests get this long to finish after SIGTERM or SIGINT;
/// less than Kubernetes' default 30 s grace period.
const SHUTDOWN_TIMEOUT_SECS: u64 = 20;
/// How often the primary's key schedule runs: a due key signs within this.
const KEY_SCHEDULE_TICK: Duration = Duration::from_millis(250);
/// Housekeeping (the revoked-id copy, expired token revocations) runs
/// every this many ticks: every 10 s.
const HOUSEKEEPING_EVERY: u64 = 40;

pub struct Application {
    port: u16,
    server: Server,
    /// The primary's store; a replica has none.
    store: Option<Arc<Store>>,
    state: web::Data<AppState>,
}

/// What a role brings to a node.
struct Backing {
    keys: Arc<KeyRing>,
    directory: Arc<Directory>,
    store: Option<Arc<Store>>,
    admin_token: Option<SecretDigest>,
    /// A replica's own keys, if it holds any (its signer, if it may issue).
    local_keys: Option<KeySet>,
}

/// The primary: keys (generated on first start), the store, and the state
/// read from it, at its change log's version.
fn primary_backing(settings: &Settings, clock: &dyn Clock) -> Result<Backing, StartupError> {
    let started = std::time::Instant::now();
    let key_dir = KeyDir::open(&settings.keys_dir)?;
    key_dir.remove_leftovers()?;
    let keys = Arc::new(KeyRing::new(key_dir.load_or_init()?));
    let legacy = key_dir
        .list()?
        .iter()
        .filter(|k| k.form == KeyForm::Legacy)
        .count();
    if legacy > 0 {
        log::warn!(
            "{legacy} key file(s) in {} are in the old PKCS#8 v2 form that openssl and pyca \
             refuse; `gatehouse keys migrate` rewrites them (kids stay the same)",
            settings.keys_dir.display()
        );
    }
    create_private_dir(&settings.data_dir).map_err(io(format!(
        "data directory {}",
        settings.data_dir.display()
    )))?;
    let store_opened = std::time::Instant::now();
    let store = Arc::new(Store::open(&settings.data_dir)?);
    let store_open = store_opened.elapsed();
    store.changes.set_keep(settings.change_log_keep);
    let admin_token = bootstrap_admin_token(settings, &store)?;
    let now = clock.now();
    // Versions are the change log's: they survive restarts and do not
    // depend on the clock.
    let directory = Arc::new(Directory::starting_at(
        store.changes.last().version,
        load_applications(&store)?,
        store.resources.all()?,
    ));
    load_revocations(&store, &directory, now.timestamp())?;
    let mut scopes = Vec::new();
    store.api_key_scopes.scan_entries(|id, key_scopes| {
        if let Some(id) = parse_id(&id)
            && !directory.revocations.is_api_key_revoked(&id)
        {
            scopes.push((id, key_scopes));
        }
    })?;
    directory.scoped_keys.replace(scopes);
    crate::memory::release_freed();
    // What a cold start costs, and how much of it is sled's own open.
    log::info!(
        "state loaded in {} ms (the store opened in {} ms)",
        started.elapsed().as_millis(),
        store_open.as_millis()
    );
    Ok(Backing {
        keys,
        directory,
        store: Some(store),
        admin_token: Some(admin_token),
        local_keys: None,
    })
}

/// A replica: no store and no generated key; its state comes from the
/// primary. Keys mounted in its key directory let it issue tokens.
fn replica_backing(settings: &Settings) -> Result<Backing, StartupError> {
    let local_keys = KeyDir::load_existing(&settings.keys_dir)?;
    Ok(Backing {
        keys: Arc::new(KeyRing::new(KeySet::with_published(
            local_keys.as_ref(),
            &[],
        ))),
        directory: Arc::new(Directory::starting_at(0, Vec::new(), Vec::new())),
        store: None,
        admin_token: None,
        local_keys,
    })
}

impl Application {
    /// Prepares a node and binds its listener; nothing is served until
    /// `run_until_stopped`.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        install_providers();
        let mut backing = match settings.role {
            Role::Primary => primary_backing(&settings, clock.as_ref())?,
            Role::Replica => replica_backing(&settings)?,
        };
        let listener = TcpListener::bind(settings.listen)
            .map_err(io(format!("cannot listen on {}", settings.listen)))?;
        let local = listener.local_addr().map_err(io("listener address"))?;
        let issuer_url = IssuerUrl::new(issuer_of(&settings, local));
        let workers = settings.workers;
        let local_keys = backing.local_keys.take();
        let store = backing.store.clone();
        let state = web::Data::new(app_state(settings, clock, backing, issuer_url)?);
        let follower = follower(&state, local_keys);

        // Logger renders its line for every request before it knows whether
        // the line will be written; skip it when access lines are filtered out.
        let access_log =
            log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
        let app_state = state.clone();
        let mut server = HttpServer::new(move || app(app_state.clone(), access_log))
            .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
            .listen(listener)
            .map_err(io("cannot serve on the listener"))?;
        if let Some(workers) = workers {
            server = server.workers(workers.max(1));
        }
        match follower {
            Some(follower) => start_following(follower, local),
            None => log::info!("gatehouse listening on {local}"),
        }
        if state.admin.is_some() {
            actix_web::rt::spawn(run_primary_tasks(state.clone()));
        }
        Ok(Self {
            port: local.port(),
            server: server.run(),
            store,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT: then stops accepting, lets
    /// in-flight requests finish, and flushes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await?;
        if let Some(admin) = &self.state.admin {
            for written in [
                admin.write_revoked_ids_copy(),
                admin.write_application_copy(),
            ] {
                if let Err(e) = written {
                    log::warn!("{e}: the next start replays more of the log");
                }
            }
        }
        if let Some(admin) = &self.state.admin
            && let Err(e) = admin.persist_usage()
        {
            log::warn!("cannot persist the last uses of API keys: {e}");
        }
        if let Some(store) = &self.store {
            store.flush().map_err(std::io::Error::other)?;
            log::info!("stopped; store flushed");
        } else {
            log::info!("stopped");
        }
        Ok(())
    }
}

/// The issuer tokens name: the configured one, else a replica's primary,
/// else this node's own address.
fn issuer_of(settings: &Settings, local: SocketAddr) -> String {
    match (&settings.issuer, &settings.primary_url) {
        (Some(_), _) => settings.issuer(),
        // Until its first sync, when it adopts the primary's issuer.
        (None, Some(primary)) if settings.role == Role::Replica => primary.base().to_string(),
        // With port 0 the default issuer must name the port actually bound.
        (None, _) => {
            let derived = format!("http://{local}");
            log::warn!(
                "no issuer configured: tokens will name {derived}, which changes if the \
                 node moves; set `issuer` to the URL clients reach this node by"
            );
            derived
        }
    }
}

/// What every worker serves from. `backing.local_keys` has been taken by
/// then: they go to the follower.
fn app_state(
    settings: Settings,
    clock: Arc<dyn Clock>,
    backing: Backing,
    issuer_url: IssuerUrl,
) -> Result<AppState, StartupError> {
    let Backing {
        keys,
        directory,
        store,
        admin_token,
        local_keys: _,
    } = backing;
    let throttle = Arc::new(Throttle::new(
        settings.auth_failure_limit,
        settings.auth_failure_window,
    ));
    let session_upstream = session_upstream(&settings)?;
    let verify_throttle = Throttle::new(settings.auth_failure_limit, settings.auth_failure_window);
    let sync = (settings.role == Role::Replica).then(|| Arc::new(SyncStatus::default()));
    let primary_relay = primary_relay(&settings)?;
    Ok(AppState {
        issuer: TokenIssuer::new(
            issuer_url.clone(),
            Arc::clone(&keys),
            Arc::clone(&directory),
            Arc::clone(&throttle),
        ),
        auth_throttle: throttle,
        console: crate::http::console::session::Sessions::new(
            settings.console_idle_timeout,
            settings.console_session_lifetime,
        ),
        admin: admin(store.as_ref(), &directory, &keys, &settings, &issuer_url),
        admin_token,
        sync,
        fleet: Arc::default(),
        jwks_max_age: Arc::new(AtomicU64::new(settings.jwks_max_age)),
        primary_relay,
        snapshots_in_flight: Arc::default(),
        verifier: Verifier::new(issuer_url.clone()),
        verify_throttle,
        revocation_limit: Throttle::new(settings.revocations_per_minute, 60),
        session_upstream,
        metrics: Metrics::new().map_err(|e| StartupError::Unsupported(format!("metrics: {e}")))?,
        issuer_url,
        settings,
        clock,
        keys,
        directory,
    })
}

/// The admin core, on a primary (the node with a store).
fn admin(
    store: Option<&Arc<Store>>,
    directory: &Arc<Directory>,
    keys: &Arc<KeyRing>,
    settings: &Settings,
    issuer_url: &IssuerUrl,
) -> Option<Admin> {
    store.map(|store| {
        Admin::new(
            Arc::clone(store),
            Arc::clone(directory),
            Arc::clone(keys),
            settings.keys_dir.clone(),
            issuer_url.get().to_string(),
            settings.jwks_max_age,
        )
    })
}

/// Where requests without a bearer token are verified, if configured.
fn session_upstream(settings: &Settings) -> Result<Option<SessionUpstream>, StartupError> {
    settings
        .upstream_verify_url
        .clone()
        .map(String::from)
        .map(SessionUpstream::new)
        .transpose()
        .map_err(StartupError::Unsupported)
}

/// A replica's way to its primary for revocations.
fn primary_relay(settings: &Settings) -> Result<Option<PrimaryRelay>, StartupError> {
    match (&settings.role, settings.primary_base()) {
        (Role::Replica, Some(url)) => Ok(Some(
            PrimaryRelay::new(url).map_err(StartupError::Unsupported)?,
        )),
        _ => Ok(None),
    }
}

/// A replica's follower, if it has a primary and a token to follow it
/// with: it shares the state's directory, keys, clock, issuer, JWKS
/// max-age and sync status.
fn follower(state: &AppState, local_keys: Option<KeySet>) -> Option<Follower> {
    let settings = &state.settings;
    match (
        &state.sync,
        settings.primary_base(),
        &settings.replica_token,
    ) {
        (Some(status), Some(primary_url), Some(token)) => Some(Follower {
            primary_url,
            token: token.expose().to_string(),
            directory: Arc::clone(&state.directory),
            keys: Arc::clone(&state.keys),
            local_keys,
            keys_dir: settings.keys_dir.clone(),
            max_state_bytes: settings.max_state_bytes,
            status: Arc::clone(status),
            clock: Arc::clone(&state.clock),
            // Each long-poll ends well within max_staleness, so a live
            // primary always keeps the copy fresh.
            wait: Duration::from_secs((settings.max_staleness / 2).clamp(1, 25)),
            issuer: state.issuer_url.clone(),
            adopt_issuer: settings.issuer.is_none(),
            jwks_max_age: Arc::clone(&state.jwks_max_age),
        }),
        _ => None,
    }
}

/// One worker's app: the routes, behind the access log and the metrics.
fn app(
    state: web::Data<AppState>,
    access_log: bool,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| ApiError::from(BodyError::Query(e.to_string())).into()),
        )
        // One access line per request, except where it would only
        // repeat the proxy's own log (/api/verify logs its decisions
        // itself) or the health probes.
        .wrap(Condition::new(
            access_log,
            Logger::new(r#"%a "%r" %s %b %Dms"#)
                .exclude("/api/verify")
                .exclude("/healthz")
                .exclude("/readyz")
                .exclude("/metrics"),
        ))
        .wrap(actix_web::middleware::from_fn(http::record_metrics))
        .configure(http::configure)
        .default_service(web::to(http::not_found))
}

/// A replica's background work: following its primary, and reporting
/// API key uses to it.
fn start_following(follower: Follower, local: SocketAddr) {
    log::info!(
        "gatehouse replica listening on {local}, following {}",
        follower.primary_url
    );
    if plain_http_beyond_loopback(&follower.primary_url) {
        log::warn!(
            "primary_url {} is plain http beyond loopback: anyone on the path \
             reads the replica token and the state (secret digests included) \
             and can feed this replica keys and rules; use https",
            follower.primary_url
        );
    }
    actix_web::rt::spawn(report_usage(
        follower.primary_url.clone(),
        follower.token.clone(),
        Arc::clone(&follower.directory),
    ));
    actix_web::rt::spawn(follower.run());
}

/// The primary's own work, for the life of the process: the key schedule
/// four times a second (a published key starts signing when due,
/// verify-only keys leave the JWKS once nothing live can carry them), and
/// housekeeping every `HOUSEKEEPING_EVERY` ticks. A step that fails is
/// logged, and the next one waits longer, up to a minute.
async fn run_primary_tasks(state: web::Data<AppState>) {
    let mut ticks: u64 = 0;
    let mut pause = KEY_SCHEDULE_TICK;
    loop {
        actix_web::rt::time::sleep(pause).await;
        ticks += 1;
        let step = state.clone();
        let housekeeping = ticks.is_multiple_of(HOUSEKEEPING_EVERY);
        let result = web::block(move || match &step.admin {
            Some(admin) => {
                let now = step.clock.now();
                admin.advance_key_schedule(&step.fleet, now)?;
                if housekeeping {
                    admin.housekeeping(now)?;
                }
                Ok::<(), crate::admin::AdminError>(())
            }
            None => Ok(()),
        })
        .await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        pause = match failure {
            None => KEY_SCHEDULE_TICK,
            Some(e) => {
                log::error!("primary tasks: {e}");
                (pause * 2).min(Duration::from_secs(60))
            }
        };
    }
}

/// Every application record: from the copy beside sled and the change log
/// after it, or, without a usable copy, from the table (and the copy is
/// written again).
fn load_applications(store: &Store) -> Result<Vec<ApplicationRecord>, StartupError> {
    let Some(copy) = store.application_copy() else {
        let at = store.changes.last();
        let records = store.applications.all()?;
        log::info!("applications: {} read from the table", records.len());
        if let Err(e) = store.write_application_copy(&at, &records) {
            log::warn!("cannot write the application copy: {e}; the next start scans again");
        }
        return Ok(records);
    };
    let changes: Vec<Change> = store
        .changes
        .after(copy.at.version, usize::MAX)
        .map_err(StoreError::from)?
        .into_iter()
        .map(|entry| entry.change)
        .filter(|change| {
            matches!(
                change,
                Change::PutApplication { .. } | Change::RemoveApplication { .. }
            )
        })
        .collect();
    log::info!(
        "applications: {} from the copy at version {}, {} changes replayed after it",
        copy.records.len(),
        copy.at.version,
        changes.len()
    );
    if changes.is_empty() {
        return Ok(copy.records);
    }
    let mut records: HashMap<String, ApplicationRecord> = copy
        .records
        .into_iter()
        .map(|app| (String::from(&*app.client_id), app))
        .collect();
    for change in changes {
        match change {
            Change::PutApplication { application } => {
                records.insert(String::from(&*application.client_id), application);
            }
            Change::RemoveApplication { client_id } => {
                records.remove(&client_id);
            }
            _ => {}
        }
    }
    Ok(records.into_values().collect())
}

/// A replica's report of API key uses to its primary, every
/// `REPORT_EVERY`: `POST /internal/v1/usage`, behind the replica token. A
/// report that does not go through is kept for the next one.
async fn report_usage(
    primary_url: crate::parsed::BaseUrl,
    token: String,
    directory: Arc<Directory>,
) {
    use crate::key_usage::{MAX_REPORT, REPORT_EVERY, ReportedUse, UsageReport};
    let client = match crate::crypto::http_client(|builder| {
        builder
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
    }) {
        Ok(client) => client,
        Err(e) => {
            log::error!("replica: cannot build an HTTP client for usage reports: {e}");
            return;
        }
    };
    let url = primary_url.join("/internal/v1/usage");
    loop {
        actix_web::rt::time::sleep(REPORT_EVERY).await;
        let mut uses = directory.usage.take();
        while !uses.is_empty() {
            let rest = uses.split_off(uses.len().min(MAX_REPORT));
            let report = UsageReport {
                uses: uses
                    .iter()
                    .map(|(id, usage)| ReportedUse {
                        id: crate::crypto::b64url(id),
                        at: usage.at,
                        from: usage.from,
                    })
                    .collect(),
            };
            let sent = client
                .post(&url)
                .bearer_auth(&token)
                .json(&report)
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => uses = rest,
                failed => {
                    let why = match failed {
                        Ok(response) => format!("the primary answered {}", response.status()),
                        Err(e) => e.to_string(),
                    };
                    log::warn!("replica: reporting API key uses failed: {why}; kept for later");
                    directory.usage.merge(uses.into_iter().chain(rest));
                    break;
                }
            }
        }
    }
}

/// Fills the in-memory revocation sets. Revoked API key ids come from the
/// compact copy beside sled and the change log after it, or, without a
/// usable copy, from every record (and the copy is written again);
/// revocations of expired tokens are dropped, on disk too.
fn load_revocations(store: &Store, directory: &Directory, now: i64) -> Result<(), StartupError> {
    match store.revoked_ids_copy() {
        Some(copy) => {
            directory.revocations.revoke_api_keys(copy.ids);
            let ids = store
                .changes
                .after(copy.at.version, usize::MAX)
                .map_err(StoreError::from)?
                .into_iter()
                .filter_map(|entry| match entry.change {
                    Change::RevokeApiKey { id } => parse_id(&id),
                    _ => None,
                });
            directory
                .revocations
                .revoke_api_keys(ids.collect::<Vec<_>>());
        }
        None => {
            let at = store.changes.last();
            let mut ids = Vec::new();
            store.api_keys.scan(|key| {
                if key.revoked_at.is_some()
                    && let Some(id) = parse_id(&key.id)
                {
                    ids.push(id);
                }
            })?;
            if let Err(e) = store.write_revoked_ids_copy(&at, ids.clone()) {
                log::warn!("cannot write the revoked-id copy: {e}; the next start scans again");
            }
            directory.revocations.revoke_api_keys(ids);
        }
    }
    for (jti, exp) in store.revoked_tokens.entries()? {
        match parse_id(&jti) {
            Some(id) if now <= exp.saturating_add(LEEWAY_SECS) => {
                directory.revocations.revoke_access_token(id, exp, now)
            }
            _ => {
                store.revoked_tokens.delete(&jti)?;
            }
        }
    }
    let (keys, tokens) = directory.revocations.len();
    log::info!("loaded {keys} revoked API keys and {tokens} revoked access tokens");
    Ok(())
}

/// `http://` to anything but a loopback address or `localhost`.
fn plain_http_beyond_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = crate::target::host::rule_host(authority).unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// The configured admin token, or the one generated on first start. A
/// generated token is written once to `<data_dir>/admin-token` (mode 0600);
/// only its digest is kept in the store, and the log names the file only.
fn bootstrap_admin_token(settings: &Settings, store: &Store) -> Result<SecretDigest, StartupError> {
    if let Some(token) = &settings.admin_token {
        return Ok(SecretDigest::of(token.expose()));
    }
    if let Some(digest) = store.admin_token_digest()? {
        return Ok(digest);
    }
    let token =
        random_secret(ADMIN_TOKEN_PREFIX).map_err(|e| StartupError::Unsupported(e.to_string()))?;
    let path: PathBuf = settings.data_dir.join(ADMIN_TOKEN_FILE);
    // A file without a digest in the store is left from an interrupted
    // first start; it holds a token that never worked.
    if path.exists() {
        std::fs::remove_file(&path).map_err(io(format!("removing stale {}", path.display())))?;
    }
    write_private_file(&path, format!("{token}\n").as_bytes())
        .map_err(io(format!("writing {}", path.display())))?;
    let digest = SecretDigest::of(&token);
    store.set_admin_token_digest(&digest)?;
    log::warn!(
        "no admin token configured: generated one and wrote it to {} (mode 0600)",
        path.display()
    );
    Ok(digest)
}
