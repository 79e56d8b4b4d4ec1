//! Building and running a node: load keys, open the store, bootstrap the
//! admin token, bind, serve.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::Logger;
use actix_web::{App, HttpServer, web};

use crate::admin::Admin;
use crate::clock::Clock;
use crate::config::{Role, Settings};
use crate::crypto::{SecretDigest, jwt_provider, random_secret};
use crate::directory::Directory;
use crate::http::error::{ApiError, BodyError};
use crate::http::upstream::SessionUpstream;
use crate::http::{self, AppState};
use crate::issuer::TokenIssuer;
use crate::keys::{KeyDir, KeyError, KeyRing, create_private_dir, write_private_file};
use crate::metrics::Metrics;
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

pub struct Application {
    port: u16,
    server: Server,
    store: Arc<Store>,
}

impl Application {
    /// Prepares a node and binds its listener; nothing is served until
    /// `run_until_stopped`.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        jwt_provider::install();
        if settings.role == Role::Replica {
            return Err(StartupError::Unsupported(
                "the replica role is not implemented yet".into(),
            ));
        }
        let keys = Arc::new(KeyRing::new(
            KeyDir::open(&settings.keys_dir)?.load_or_init()?,
        ));
        create_private_dir(&settings.data_dir).map_err(io(format!(
            "data directory {}",
            settings.data_dir.display()
        )))?;
        let store = Arc::new(Store::open(&settings.data_dir)?);
        let admin_token = bootstrap_admin_token(&settings, &store)?;
        let directory = Arc::new(Directory::new(
            store.applications.all()?,
            store.resources.all()?,
        ));
        load_revocations(&store, &directory, clock.now().timestamp())?;

        let listener = TcpListener::bind(settings.listen)
            .map_err(io(format!("cannot listen on {}", settings.listen)))?;
        let local = listener.local_addr().map_err(io("listener address"))?;
        // With port 0 the default issuer must name the port actually bound.
        let issuer_url = match &settings.issuer {
            Some(_) => settings.issuer(),
            None => format!("http://{local}"),
        };
        let throttle = Arc::new(Throttle::new(
            settings.auth_failure_limit,
            settings.auth_failure_window,
        ));
        let workers = settings.workers;
        let session_upstream = settings
            .upstream_verify_url
            .clone()
            .map(SessionUpstream::new)
            .transpose()
            .map_err(StartupError::Unsupported)?;
        let verify_throttle =
            Throttle::new(settings.auth_failure_limit, settings.auth_failure_window);
        let state = web::Data::new(AppState {
            issuer: TokenIssuer::new(
                issuer_url.clone(),
                Arc::clone(&keys),
                Arc::clone(&directory),
                throttle,
            ),
            admin: Some(Admin::new(
                Arc::clone(&store),
                Arc::clone(&directory),
                Arc::clone(&keys),
                settings.keys_dir.clone(),
                issuer_url.clone(),
            )),
            admin_token: Some(admin_token),
            verifier: Verifier::new(issuer_url.clone()),
            verify_throttle,
            session_upstream,
            metrics: Metrics::new()
                .map_err(|e| StartupError::Unsupported(format!("metrics: {e}")))?,
            issuer_url,
            settings,
            clock,
            keys,
            directory,
        });

        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::from(BodyError::Malformed {
                        field: None,
                        message: format!("query string: {e}"),
                    })
                    .into()
                }))
                // One access line per request, except where it would only
                // repeat the proxy's own log (/api/verify logs its decisions
                // itself) or the health probes.
                .wrap(
                    Logger::new(r#"%a "%r" %s %b %Dms"#)
                        .exclude("/api/verify")
                        .exclude("/healthz")
                        .exclude("/readyz")
                        .exclude("/metrics"),
                )
                .wrap(actix_web::middleware::from_fn(http::record_metrics))
                .configure(http::configure)
                .default_service(web::to(http::not_found))
        })
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)
        .map_err(io("cannot serve on the listener"))?;
        if let Some(workers) = workers {
            server = server.workers(workers.max(1));
        }
        log::info!("gatehouse listening on {local}");
        Ok(Self {
            port: local.port(),
            server: server.run(),
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT: then stops accepting, lets
    /// in-flight requests finish, and flushes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await?;
        self.store.flush().map_err(std::io::Error::other)?;
        log::info!("stopped; store flushed");
        Ok(())
    }
}

/// Fills the in-memory revocation sets from the store, dropping token
/// revocations that are no longer needed.
fn load_revocations(store: &Store, directory: &Directory, now: i64) -> Result<(), StartupError> {
    store.api_keys.scan(|key| {
        if key.revoked_at.is_some()
            && let Some(id) = parse_id(&key.id)
        {
            directory.revocations.revoke_api_key(id);
        }
    })?;
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
