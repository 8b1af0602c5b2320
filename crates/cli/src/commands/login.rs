//! `rbuild login [-u USER] [--password-stdin] HOST` and `rbuild logout HOST`: check credentials
//! against the registry and remember them in docker's config.json (or its credential helper).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_engine::registry::normalize_host;
use rbuild_registry::Credential;

use super::registry_opts::{RegistryArgs, runtime};

/// Arguments of `rbuild login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User name
    #[arg(long, short)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin: arguments show up in the process list)
    #[arg(long, short, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The registry, e.g. `localhost:5000` [default: docker.io]
    #[arg(value_name = "HOST")]
    pub host: Option<String>,
}

/// Arguments of `rbuild logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Credentials file [default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json]
    #[arg(long, value_name = "FILE", env = "RBUILD_AUTH_FILE")]
    pub authfile: Option<std::path::PathBuf>,
    /// The registry [default: docker.io]
    #[arg(value_name = "HOST")]
    pub host: Option<String>,
}

/// Run `rbuild login`.
pub fn run_login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let host = normalize_host(args.host.as_deref().unwrap_or("docker.io"));
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username: ", true)?,
    };
    if username.is_empty() {
        anyhow::bail!("login to {host}: the user name is empty");
    }
    let secret = if let Some(p) = args.password {
        p
    } else if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        prompt("Password: ", false)?
    };
    if secret.is_empty() {
        anyhow::bail!("login to {host}: the password is empty");
    }
    let credential = Credential { username, secret };
    let settings = args.registry.settings();
    runtime()?.block_on(rbuild_engine::registry::login(&settings, &host, credential))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Run `rbuild logout`.
pub fn run_logout(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let host = normalize_host(args.host.as_deref().unwrap_or("docker.io"));
    rbuild_engine::registry::logout(args.authfile.as_deref(), &host)?;
    println!("Removing login credentials for {host}");
    Ok(ExitCode::SUCCESS)
}

/// Ask on the terminal; without echo for passwords.
fn prompt(question: &str, echo: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "cannot ask for the {} without a terminal; use --username and --password-stdin",
            question.trim_end_matches(": ").to_lowercase()
        );
    }
    eprint!("{question}");
    std::io::stderr().flush().ok();
    use nix::sys::termios::{self, LocalFlags, SetArg};
    let saved = if echo {
        None
    } else {
        let t = termios::tcgetattr(&stdin).context("reading terminal settings")?;
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning echo off")?;
        Some(t)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &t);
        eprintln!();
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
