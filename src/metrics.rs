//! Prometheus metrics, exposed at `GET /metrics`. Label handles are
//! resolved once, so the hot path pays a few atomic increments.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::directory::Directory;

/// Routes as labels: a fixed set, so a scan of random paths cannot grow
/// the label space.
const ROUTES: [&str; 10] = [
    "replication",
    "verify",
    "token",
    "introspect",
    "revoke",
    "discovery",
    "admin",
    "console",
    "health",
    "other",
];

/// The `route` label of a request path.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/api/verify" => "verify",
        "/oauth/token" => "token",
        "/oauth/introspect" => "introspect",
        "/oauth/revoke" => "revoke",
        "/healthz" | "/readyz" | "/metrics" => "health",
        "/internal/v1/state" => "replication",
        p if p.starts_with("/.well-known/") => "discovery",
        "/internal/v1/usage" => "replication",
        p if p.starts_with("/admin/") => "admin",
        p if p == "/ui" || p.starts_with("/ui/") => "console",
        _ => "other",
    }
}

/// Statuses whose request counters are resolved up front, per route.
const COMMON_STATUSES: [u16; 9] = [200, 201, 204, 302, 400, 401, 403, 404, 429];

/// Request latency per route, in buckets from 100 µs to 1 s.
fn latency_histograms() -> Result<HistogramVec, prometheus::Error> {
    HistogramVec::new(
        HistogramOpts::new("http_request_duration_seconds", "Time to answer, by route").buckets(
            vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ],
        ),
        &["route"],
    )
}

/// Per route (as in `ROUTES`), the counters of the `COMMON_STATUSES`.
fn common_request_counters(
    requests: &IntCounterVec,
) -> Result<Vec<Vec<(u16, IntCounter)>>, prometheus::Error> {
    ROUTES
        .iter()
        .map(|route| {
            COMMON_STATUSES
                .iter()
                .map(|status| {
                    let digits = itoa_status(*status);
                    let counter =
                        requests.get_metric_with_label_values(&[route, status_str(&digits)])?;
                    Ok((*status, counter))
                })
                .collect()
        })
        .collect()
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// Per route (as in `ROUTES`), the counters of the common statuses: the
    /// hot path finds its counter without hashing labels or taking a lock.
    common_requests: Vec<Vec<(u16, IntCounter)>>,
    latency: Vec<(&'static str, Histogram)>,
    decisions: IntCounterVec,
    granted: IntCounter,
    tokens_issued: IntCounter,
    replication_answers: IntCounterVec,
    replication_changes: IntCounter,
    revoked_api_keys: IntGauge,
    revoked_access_tokens: IntGauge,
    state_version: IntGauge,
    applications: IntGauge,
    resources: IntGauge,
    sync_age: IntGauge,
    /// Primary: live API keys expiring within 1d, 7d, 30d.
    keys_expiring: prometheus::IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("gatehouse".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )?;
        let latency_vec = latency_histograms()?;
        let decisions = IntCounterVec::new(
            Opts::new(
                "verify_decisions_total",
                "/api/verify decisions by outcome and reason",
            ),
            &["outcome", "reason"],
        )?;
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        let metrics = Self {
            common_requests: common_request_counters(&requests)?,
            latency: ROUTES
                .iter()
                .map(|route| Ok((*route, latency_vec.get_metric_with_label_values(&[route])?)))
                .collect::<Result<_, prometheus::Error>>()?,
            granted: decisions.get_metric_with_label_values(&["granted", "ok"])?,
            tokens_issued: IntCounter::new("tokens_issued_total", "Access tokens issued")?,
            replication_answers: IntCounterVec::new(
                Opts::new(
                    "replication_answers_total",
                    "Primary: state answers sent to replicas, by kind",
                ),
                &["kind"],
            )?,
            replication_changes: IntCounter::new(
                "replication_changes_sent_total",
                "Primary: changes sent to replicas in changes answers",
            )?,
            revoked_api_keys: gauge("revoked_api_keys", "Revoked API key ids held in memory")?,
            revoked_access_tokens: gauge(
                "revoked_access_tokens",
                "Revoked access-token jtis held in memory",
            )?,
            state_version: gauge("state_version", "Version of the in-memory state")?,
            applications: gauge("applications", "Applications")?,
            resources: gauge("resources", "Forward-auth rules")?,
            sync_age: gauge(
                "sync_age_seconds",
                "Replicas: seconds since the primary last answered (-1: never)",
            )?,
            keys_expiring: prometheus::IntGaugeVec::new(
                Opts::new(
                    "api_keys_expiring",
                    "Primary: API keys (not revoked) that expire within the window",
                ),
                &["within"],
            )?,
            registry,
            requests,
            decisions,
        };
        metrics.register(latency_vec)?;
        Ok(metrics)
    }

    /// Registers every metric; the latency histograms are kept per route,
    /// so their vector is handed over here.
    fn register(&self, latency_vec: HistogramVec) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(self.requests.clone()))?;
        self.registry.register(Box::new(latency_vec))?;
        self.registry.register(Box::new(self.decisions.clone()))?;
        for collector in [
            Box::new(self.tokens_issued.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.replication_answers.clone()),
            Box::new(self.replication_changes.clone()),
            Box::new(self.revoked_api_keys.clone()),
            Box::new(self.revoked_access_tokens.clone()),
            Box::new(self.state_version.clone()),
            Box::new(self.applications.clone()),
            Box::new(self.resources.clone()),
            Box::new(self.sync_age.clone()),
            Box::new(self.keys_expiring.clone()),
        ] {
            self.registry.register(collector)?;
        }
        Ok(())
    }

    pub fn observe_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        let index = ROUTES.iter().position(|r| *r == route);
        let common = index
            .and_then(|i| self.common_requests.get(i))
            .and_then(|counters| counters.iter().find(|(s, _)| *s == status));
        match common {
            Some((_, counter)) => counter.inc(),
            None => {
                let buffer = itoa_status(status);
                if let Ok(counter) = self
                    .requests
                    .get_metric_with_label_values(&[route, status_str(&buffer)])
                {
                    counter.inc();
                }
            }
        }
        if let Some((_, histogram)) = index.and_then(|i| self.latency.get(i)) {
            histogram.observe(elapsed.as_secs_f64());
        }
    }

    pub fn verify_granted(&self) {
        self.granted.inc();
    }

    /// No bearer token: the session fallback decides.
    pub fn verify_fallback(&self) {
        if let Ok(counter) = self
            .decisions
            .get_metric_with_label_values(&["fallback", "no_bearer_token"])
        {
            counter.inc();
        }
    }

    pub fn verify_denied(&self, reason: &'static str) {
        if let Ok(counter) = self
            .decisions
            .get_metric_with_label_values(&["denied", reason])
        {
            counter.inc();
        }
    }

    pub fn token_issued(&self) {
        self.tokens_issued.inc();
    }

    /// A state answer to a replica: a snapshot, or `changes` of them.
    pub fn replication_sent(&self, kind: &'static str, changes: usize) {
        if let Ok(counter) = self
            .replication_answers
            .get_metric_with_label_values(&[kind])
        {
            counter.inc();
        }
        if kind == "changes" {
            self.replication_changes.inc_by(changes as u64);
        }
    }

    /// The Prometheus text exposition, with the state gauges read now.
    /// `sync_age` is a replica's (`Some(None)`: never synced); `None` on a primary.
    pub fn render(
        &self,
        directory: &Directory,
        sync_age: Option<Option<i64>>,
        keys_expiring: Option<[u64; 3]>,
    ) -> Result<String, prometheus::Error> {
        if let Some(counts) = keys_expiring {
            for ((window, _), count) in crate::admin::EXPIRY_WINDOWS.iter().zip(counts) {
                self.keys_expiring
                    .with_label_values(&[window])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        self.sync_age.set(match sync_age {
            Some(Some(age)) => age,
            Some(None) => -1,
            None => 0,
        });
        let snapshot = directory.snapshot();
        let (keys, tokens) = directory.revocations.len();
        self.revoked_api_keys
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
        self.revoked_access_tokens
            .set(i64::try_from(tokens).unwrap_or(i64::MAX));
        self.state_version
            .set(i64::try_from(directory.version()).unwrap_or(i64::MAX));
        self.applications
            .set(i64::try_from(snapshot.applications().len()).unwrap_or(i64::MAX));
        self.resources
            .set(i64::try_from(snapshot.resources.len()).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// A status code as three ASCII digits, without allocating.
fn itoa_status(status: u16) -> [u8; 3] {
    let status = status.min(999);
    [
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]
}

fn status_str(digits: &[u8; 3]) -> &str {
    std::str::from_utf8(digits).unwrap_or("000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_a_fixed_label_set() {
        assert_eq!(route_label("/api/verify"), "verify");
        assert_eq!(route_label("/admin/v1/applications/x"), "admin");
        assert_eq!(route_label("/.well-known/jwks.json"), "discovery");
        assert_eq!(route_label("/wp-login.php"), "other");
        assert_eq!(route_label("/ui/applications"), "console");
        assert_eq!(route_label("/uix"), "other");
        assert!(ROUTES.contains(&route_label("/anything")));
    }

    #[test]
    fn status_digits() {
        let digits = itoa_status(404);
        assert_eq!(status_str(&digits), "404");
    }
}
