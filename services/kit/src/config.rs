//! Settings every service shares. Each is a flag and a `VECHE_*` variable; the defaults
//! work on a laptop.

use crate::telemetry::LogFormat;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address to listen on.
    #[arg(long, env = catalog::env::LISTEN, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for the embedded store, keys and the development mailbox.
    #[arg(long, env = catalog::env::DATA_DIR, default_value = "./veche-data")]
    pub data_dir: PathBuf,

    /// Log format: text (for people) or json (for collectors).
    #[arg(long, env = catalog::env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub platform: PlatformArgs,

    #[command(flatten)]
    pub mail: crate::mail::MailArgs,
}

/// Where the rest of the platform is, and who this service is to it.
#[derive(Debug, Clone, clap::Args)]
pub struct PlatformArgs {
    /// The URL people and frontends reach the platform at; links in mail point here,
    /// and it is the token issuer unless `--issuer` says otherwise. `veche up` defaults
    /// it to its own address; a lone service to `http://127.0.0.1:8080`.
    #[arg(long, env = catalog::env::PUBLIC_URL)]
    pub public_url: Option<String>,

    /// The `iss` of every token (defaults to the public URL).
    #[arg(long, env = catalog::env::ISSUER)]
    pub issuer: Option<String>,

    /// Base URL of the users service (keys, service tokens); default: the public URL.
    #[arg(long, env = catalog::env::USERS_URL)]
    pub users_url: Option<String>,

    /// Base URL of the organizations service; default: the public URL.
    #[arg(long, env = catalog::env::ORGANIZATIONS_URL)]
    pub organizations_url: Option<String>,

    /// Base URL of the analytics service. When set (and this service has a client
    /// secret), the service relays its outbox of domain facts there.
    #[arg(long, env = catalog::env::ANALYTICS_URL)]
    pub analytics_url: Option<String>,

    /// This service's secret as a client of the token endpoint (its name is the id).
    #[arg(long, env = catalog::env::SERVICE_CLIENT_SECRET, hide_env_values = true)]
    pub client_secret: Option<String>,
}

impl PlatformArgs {
    fn base(url: &str) -> String {
        url.trim_end_matches('/').to_owned()
    }

    pub fn issuer(&self) -> String {
        self.issuer.clone().unwrap_or_else(|| self.public_url())
    }

    pub fn public_url(&self) -> String {
        Self::base(self.public_url.as_deref().unwrap_or("http://127.0.0.1:8080"))
    }

    pub fn users_url(&self) -> String {
        self.users_url.as_deref().map(Self::base).unwrap_or_else(|| self.public_url())
    }

    pub fn organizations_url(&self) -> String {
        self.organizations_url.as_deref().map(Self::base).unwrap_or_else(|| self.public_url())
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.users_url())
    }

    pub fn token_url(&self) -> String {
        format!("{}/api/v1/auth/token", self.users_url())
    }
}

/// Limits of the HTTP server.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "VECHE_BODY_LIMIT", default_value_t = 256 * 1024)]
    pub body_limit: usize,

    /// Longest a request may take before it is answered 503, in seconds.
    #[arg(long, env = "VECHE_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// How long shutdown waits for in-flight requests, in seconds.
    #[arg(long, env = "VECHE_SHUTDOWN_GRACE", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// Longest a client may take to send a request's headers, stay idle between requests
    /// on a kept-alive connection, or go without taking any of an answer it is sent, in
    /// seconds.
    #[arg(long, env = "VECHE_HEADER_TIMEOUT", default_value_t = 10.0)]
    pub header_timeout_secs: f64,

    /// The proxies in front of this server that may say who the client is, through
    /// `X-Forwarded-For`: a count (`1`: one proxy, the client is the rightmost entry) or
    /// addresses and CIDR networks (`10.0.0.0/8,192.0.2.7`: the client is the rightmost
    /// entry outside them). Empty: none, the client is the socket peer.
    #[arg(long, env = "VECHE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: crate::forwarded::TrustedProxies,

    /// Shorthand for `VECHE_TRUSTED_PROXIES=1` (one proxy in front).
    #[arg(long, env = catalog::env::TRUST_FORWARDED_FOR, default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// Where `/metrics` is served, on a listener of its own (in a cluster: the pod's
    /// `metrics` port). Unset: beside the API for services other than the gateway, whose
    /// listener is inside the cluster; the gateway then serves no metrics; `veche up`
    /// serves them on its internal listener.
    #[arg(long, env = catalog::env::METRICS_LISTEN)]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Connections one client address may hold open at once at the edge (`veche up`'s
    /// public listener, `veche serve gateway`); more are held unread for the header
    /// timeout, then closed (0: no cap). Trusted proxies are not capped: all their
    /// clients share them. Domain services behind the gateway are never capped.
    #[arg(long, env = "VECHE_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub connections_per_client: usize,

    /// Threads serving requests in `veche serve`, each with its own runtime and listening
    /// socket (0: one per available core). `veche up` serves everything on one runtime.
    #[arg(long, env = "VECHE_THREADS", default_value_t = 0)]
    pub threads: usize,
}

impl Default for HttpArgs {
    fn default() -> Self {
        Self {
            body_limit: 256 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 20,
            header_timeout_secs: 10.0,
            trusted_proxies: Default::default(),
            trust_forwarded_for: false,
            metrics_listen: None,
            connections_per_client: 256,
            threads: 0,
        }
    }
}

impl HttpArgs {
    /// Who may say who the client is: [`Self::trusted_proxies`], or one proxy when only
    /// `VECHE_TRUST_FORWARDED_FOR` is set.
    pub fn proxies(&self) -> crate::forwarded::TrustedProxies {
        use crate::forwarded::TrustedProxies;
        match &self.trusted_proxies {
            TrustedProxies::None if self.trust_forwarded_for => TrustedProxies::Hops(1),
            other => other.clone(),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_timeout_secs.clamp(0.1, 3600.0))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}
