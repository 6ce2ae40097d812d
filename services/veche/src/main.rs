//! `veche`: the platform's one binary.
//!
//! - `veche up` runs every service in one process on the embedded store: a laptop needs
//!   nothing else.
//! - `veche serve <service>` runs one service: the container entrypoint.
//! - `veche admin create` makes an administrator without a default password anywhere.

use clap::{Parser, Subcommand, ValueEnum};
use kit::config::CommonArgs;
use std::io::{BufRead, IsTerminal};
use users::UsersConfig;

#[derive(Parser)]
#[command(
    name = "veche",
    version,
    about = "Veche: the backend of an events platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform in one process on the embedded store.
    Up {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        users: UsersConfig,
    },
    /// Run one service (the container entrypoint).
    Serve {
        service: ServiceName,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        users: UsersConfig,
    },
    /// Administration tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ServiceName {
    Users,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up { common, users } => run(common, users, "up").await,
        Command::Serve {
            service: ServiceName::Users,
            common,
            users,
        } => run(common, users, "users").await,
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    display_name,
                    common,
                    users,
                },
        } => {
            kit::telemetry::init(common.log_format);
            let password = read_password()?;
            let built = users::build(users, &common.data_dir, &common.http).await?;
            let user = users::create_admin(&built.app, &email, &password, &display_name).await?;
            println!("created administrator {} ({})", user.email, user.id);
            Ok(())
        }
    }
}

async fn run(common: CommonArgs, users: UsersConfig, what: &str) -> anyhow::Result<()> {
    kit::telemetry::init(common.log_format);
    let built = users::build(users, &common.data_dir, &common.http).await?;
    let router = kit::server::app(vec![built.service], &common.http);
    let listener = tokio::net::TcpListener::bind(common.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %common.data_dir.display(), mode = what, "Veche is listening");
    if what == "up" {
        eprintln!(
            "Veche is up at http://{addr}  (data: {}, API docs: http://{addr}/openapi.json, mail: {}/mail)",
            common.data_dir.display(),
            common.data_dir.display()
        );
    }
    kit::server::serve(
        listener,
        router,
        kit::server::shutdown_signal(),
        common.http.shutdown_grace(),
    )
    .await?;
    Ok(())
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
