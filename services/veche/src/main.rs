//! `veche`: the platform's one binary.
//!
//! - `veche up` runs the gateway and every service in one process on the embedded store:
//!   a laptop needs nothing else.
//! - `veche serve <service>` runs one service: the container entrypoint.
//! - `veche admin create` makes an administrator without a default password anywhere.

use clap::{Parser, Subcommand, ValueEnum};
use kit::config::CommonArgs;
use kit::platform::Context;
use organizations::OrganizationsConfig;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use users::UsersConfig;

/// mimalloc: the proxy path and the services allocate per request, and glibc's malloc
/// cost them 4–9% of their throughput (bench/gateway.sh). Built without transparent huge
/// pages (`no_thp` of libmimalloc-sys): with them, an idle `veche up` held 37 MiB, not 26.
/// Argon2's large working memory bypasses it (users' `password::Memory`), so it goes
/// back to the system when a login is done.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `--version`: the release and the commit it was built from (stamped by build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("VECHE_GIT_COMMIT"), ")");

#[derive(Parser)]
#[command(name = "veche", version = VERSION, about = "Veche: the backend of an events platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Settings of every service; each service reads its own.
#[derive(clap::Args, Clone)]
struct Services {
    #[command(flatten)]
    users: UsersConfig,
    #[command(flatten)]
    events: events::EventsConfig,
    #[command(flatten)]
    organizations: OrganizationsConfig,
    #[command(flatten)]
    analytics: analytics::AnalyticsConfig,
    #[command(flatten)]
    gateway: gateway::GatewayConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform in one process on the embedded store.
    Up {
        /// Where services answer each other (default: a free loopback port). Only for
        /// calls between services and their tests: no edge checks or limits there.
        #[arg(long, env = "VECHE_INTERNAL_LISTEN")]
        internal_listen: Option<SocketAddr>,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        services: Services,
    },
    /// Run one service (the container entrypoint).
    Serve {
        service: ServiceName,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        services: Services,
    },
    /// Administration tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServiceName {
    Users,
    Events,
    Organizations,
    Analytics,
    Gateway,
}

impl ServiceName {
    fn name(self) -> &'static str {
        let service = match self {
            Self::Users => catalog::Service::Users,
            Self::Events => catalog::Service::Events,
            Self::Organizations => catalog::Service::Organizations,
            Self::Analytics => catalog::Service::Analytics,
            Self::Gateway => catalog::Service::Gateway,
        };
        service.as_str()
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a platform administrator. The password is read from standard input (or
    /// `VECHE_ADMIN_PASSWORD`), never from a flag that would land in shell history.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        display_name: String,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        users: UsersConfig,
    },
}

/// glibc's malloc still serves C code (SQLite) and argon2's working memory. It adapts its
/// mmap threshold upwards after large frees, after which big buffers come from heaps it
/// never gives back. A fixed threshold keeps every allocation of 1 MiB or more in its own
/// mapping, returned to the system when freed.
fn keep_large_allocations_returnable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called once, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> anyhow::Result<()> {
    keep_large_allocations_returnable();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run_cli())
}

async fn run_cli() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up { internal_listen, common, services } => up(common, services, internal_listen).await,
        Command::Serve { service, common, services } => serve(service, common, services).await,
        Command::Admin { command: AdminCommand::Create { email, display_name, common, users } } => {
            kit::telemetry::init(common.log_format);
            let password = read_password()?;
            let opened = users::open(users, &Context::standalone(common)).await?;
            let user = users::create_admin(&opened.app, &email, &password, &display_name).await?;
            println!("created administrator {} ({})", user.email, user.id);
            Ok(())
        }
    }
}

/// The whole platform in one process: the gateway on the listen address in front of
/// every service, as in a cluster. The services answer each other on a second, internal
/// loopback listener (a cluster's Service addresses), verify tokens with the users
/// service's keys in-process, and get service tokens with secrets made up at start (they
/// never leave the process).
async fn up(mut common: CommonArgs, mut services: Services, internal: Option<SocketAddr>) -> anyhow::Result<()> {
    kit::telemetry::init(common.log_format);
    let listener = tokio::net::TcpListener::bind(common.listen).await?;
    let addr = listener.local_addr()?;
    // Loopback unless told otherwise, whatever the public address: nothing checks callers there.
    let internal = tokio::net::TcpListener::bind(internal.unwrap_or(SocketAddr::new(loopback_like(addr), 0))).await?;
    let internal_url = format!("http://{}", internal.local_addr()?);
    common.platform.public_url.get_or_insert_with(|| format!("http://{}", loopback_of(addr)));
    common.platform.users_url.get_or_insert_with(|| internal_url.clone());
    common.platform.organizations_url.get_or_insert_with(|| internal_url.clone());
    common.platform.analytics_url.get_or_insert_with(|| internal_url.clone());

    let mut secrets = std::collections::HashMap::new();
    // Every service calls another, and so is a client of the token endpoint.
    let clients = catalog::Service::ALL.map(catalog::Service::as_str);
    for client in clients {
        // A secret set in VECHE_SERVICE_CLIENTS is the one that client presents too.
        let known = &mut services.users.service_clients.0;
        let secret = known.entry(client.to_owned()).or_insert_with(kit::secret::new_token).clone();
        secrets.insert(client, secret);
    }
    // The users service is a client too: it relays its outbox to analytics.
    let mut users_common = common.clone();
    users_common.platform.client_secret = secrets.get("users").cloned();
    let users = users::open(services.users.clone(), &Context::standalone(users_common)).await?;
    let in_process = users.key_source();
    let context_for = |client: &str| {
        let mut common = common.clone();
        common.platform.client_secret = secrets.get(client).cloned();
        Context { common, keys: in_process.clone(), revoked: users.app.revoked.clone() }
    };
    let organizations =
        organizations::build(services.organizations.clone(), &context_for(organizations::SERVICE)).await?;
    let events = events::build(services.events.clone(), &context_for(events::SERVICE)).await?;
    let analytics = analytics::build(services.analytics.clone(), &context_for(analytics::SERVICE)).await?;
    let routers: std::collections::HashMap<String, axum::Router> =
        [users.service().await?, organizations, events, analytics]
            .into_iter()
            .map(|service| (service.name.to_owned(), kit::server::app(vec![service], &common.http)))
            .collect();

    // Only the routes of services that run here.
    let mut table = gateway::model::RouteTable::platform(|_| internal_url.clone());
    table.routes.retain(|r| routers.contains_key(&r.upstream));
    table.upstreams.retain(|name, _| routers.contains_key(name));
    let verifier = context_for(gateway::SERVICE).verifier(gateway::SERVICE);
    let local = || gateway::Upstreams::Local(routers.clone());
    let edge = gateway::build(&services.gateway, table.clone(), local(), verifier.clone(), &common.http)?;
    // Between services: the same routing, no edge checks or limits (each service checks
    // its callers' tokens itself).
    let mut open_table = table;
    open_table.routes.iter_mut().for_each(|r| r.auth = gateway::model::Access::None);
    // Calls between services only, never at the edge.
    let internal_routes = gateway::model::RouteTable::of(catalog::INTERNAL_ROUTES, |_| internal_url.clone()).routes;
    open_table.routes.extend(internal_routes.into_iter().filter(|r| routers.contains_key(&r.upstream)));
    // Metrics are answered here, where only this host reaches, not on the public listener.
    let unlimited = gateway::GatewayConfig {
        client_rps: 0,
        user_rps: 0,
        cors_origins: Vec::new(),
        serve_metrics: true,
        ..services.gateway
    };
    let between = gateway::build(&unlimited, open_table, local(), verifier, &common.http)?;
    // Every call between services comes from this host: no cap on its connections.
    let http = kit::config::HttpArgs { connections_per_client: 0, ..common.http.clone() };
    tokio::spawn(async move {
        if let Err(e) = kit::server::serve(internal, between, std::future::pending(), &http).await {
            tracing::error!(error = %e, "the internal listener failed");
        }
    });

    eprintln!(
        "Veche is up at http://{addr}  (data: {dir}, API docs: http://{addr}/docs, mail: {dir}/mail)",
        dir = common.data_dir.display()
    );
    run(listener, edge, &common).await
}

async fn serve(service: ServiceName, mut common: CommonArgs, services: Services) -> anyhow::Result<()> {
    kit::telemetry::init(common.log_format);
    if service != ServiceName::Gateway {
        // A domain service's callers are the gateway and the other services, each from a
        // few addresses with pools of connections: the cap is for clients at the edge.
        common.http.connections_per_client = 0;
    }
    let built = match service {
        ServiceName::Gateway => return serve_gateway(common, services.gateway).await,
        ServiceName::Users => users::build(services.users, &Context::standalone(common.clone())).await?,
        ServiceName::Events => events::build(services.events, &following(&common, events::SERVICE)).await?,
        ServiceName::Organizations => {
            organizations::build(services.organizations.clone(), &following(&common, organizations::SERVICE)).await?
        }
        ServiceName::Analytics => analytics::build(services.analytics, &following(&common, analytics::SERVICE)).await?,
    };
    let mut router = kit::server::app(vec![built], &common.http);
    // A domain service's listener is inside the cluster: metrics may sit beside the API
    // unless a listener of their own is asked for.
    if !spawn_metrics_listener(&common).await? {
        router = router.merge(kit::server::metrics_router());
    }
    serve_on_every_core(service.name(), kit::server::ByHyper(router), &common).await
}

/// The context of a service running alone, following the users service's list of ended
/// sessions (the users service keeps that list itself).
fn following(common: &CommonArgs, service: &str) -> Context {
    let context = Context::standalone(common.clone());
    clients::users::follow_ended_sessions(&context, service);
    context
}

/// Serves `/metrics` on `VECHE_METRICS_LISTEN`, when it is set (returns whether it is).
async fn spawn_metrics_listener(common: &CommonArgs) -> anyhow::Result<bool> {
    let Some(addr) = common.http.metrics_listen else { return Ok(false) };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics are served here");
    let http = common.http.clone();
    tokio::spawn(async move {
        if let Err(e) = kit::server::serve(listener, kit::server::metrics_router(), std::future::pending(), &http).await
        {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(true)
}

/// The gateway alone, in front of remote upstreams.
async fn serve_gateway(common: CommonArgs, config: gateway::GatewayConfig) -> anyhow::Result<()> {
    let table = gateway::load_table(&config)?;
    let verifier = following(&common, gateway::SERVICE).verifier(gateway::SERVICE);
    let front = gateway::build(&config, table, gateway::Upstreams::Remote, verifier, &common.http)?;
    // Never beside the public API: on a listener of its own, or not at all.
    spawn_metrics_listener(&common).await?;
    serve_on_every_core(gateway::SERVICE, gateway::edge::Edge::new(front), &common).await
}

/// One service alone: a thread per core, each with its own runtime and listening socket
/// (see `kit::server::serve_per_core`).
async fn serve_on_every_core(
    name: &str,
    connections: impl kit::server::Connections,
    common: &CommonArgs,
) -> anyhow::Result<()> {
    let (data_dir, threads) = (common.data_dir.display().to_string(), common.http.threads);
    let bound = |addr| tracing::info!(service = name, %addr, data_dir, threads, "Veche is listening");
    kit::server::serve_per_core(
        common.listen,
        threads,
        connections,
        kit::server::shutdown_signal(),
        &common.http,
        bound,
    )
    .await?;
    Ok(())
}

async fn run(
    listener: tokio::net::TcpListener,
    service: impl kit::server::HttpService,
    common: &CommonArgs,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, data_dir = %common.data_dir.display(), "Veche is listening");
    kit::server::serve(listener, service, kit::server::shutdown_signal(), &common.http).await?;
    Ok(())
}

/// The loopback address of `addr`'s family.
fn loopback_like(addr: SocketAddr) -> std::net::IpAddr {
    if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() }
}

/// The address this process can call itself at (a wildcard bind answers on loopback).
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip =
            if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("VECHE_ADMIN_PASSWORD") {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password for the new administrator (input is shown; pipe it to hide it): ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every service's flags are flattened into one command line: clap refuses clashing
    /// names only when the command is built, so build it here rather than at first start.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
