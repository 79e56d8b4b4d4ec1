use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use gatehouse::cli::{Cli, Command, ConfigArgs, KeysAction, ServeArgs, TokenArgs};
use gatehouse::cli::{admin as admin_client, healthcheck, token as client};
use gatehouse::clock::SystemClock;
use gatehouse::config::CLIENT_SECRET_ENV;
use gatehouse::config::{self, Settings};
use gatehouse::crypto;
use gatehouse::keys::{KeyDir, KeyForm, KeyState};
use gatehouse::startup::Application;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    crypto::install_providers();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => settings(&args.config).and_then(serve),
        Command::Keys { action, config } => settings(&config).and_then(|s| keys(action, &s)),
        Command::Token(args) => token(args),
        Command::Admin {
            url,
            admin_token_file,
            config,
            command,
        } => settings(&config).and_then(|s| {
            let token = admin_client::admin_token(admin_token_file.as_ref(), &s.data_dir)?;
            let url = url.unwrap_or_else(|| {
                healthcheck::readiness_url(s.listen)
                    .trim_end_matches("/readyz")
                    .to_string()
            });
            let output =
                actix_web::rt::System::new().block_on(admin_client::run(&url, &token, command))?;
            println!("{output}");
            Ok(())
        }),
        Command::Healthcheck { config, url } => settings(&config).and_then(|s| {
            let url = url.unwrap_or_else(|| healthcheck::readiness_url(s.listen));
            actix_web::rt::System::new().block_on(healthcheck::probe(&url))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::FAILURE
        }
    }
}

fn settings(args: &ConfigArgs) -> Result<Settings, String> {
    config::load(args.config.as_deref(), &args.overrides).map_err(|e| e.to_string())
}

fn serve(settings: Settings) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings, Arc::new(SystemClock))
            .await
            .map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

fn token(args: TokenArgs) -> Result<(), String> {
    let client_secret = match &args.client_secret_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .trim()
            .to_string(),
        None => std::env::var(CLIENT_SECRET_ENV)
            .map_err(|_| format!("give --client-secret-file or set {CLIENT_SECRET_ENV}"))?,
    };
    let query = client::TokenQuery {
        issuer: args.issuer,
        client_id: args.client_id,
        client_secret,
        scope: args.scope,
        audience: args.audience,
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.or_else(client::default_cache_dir)
        },
        refresh: args.refresh,
    };
    let token = actix_web::rt::System::new().block_on(client::token(&query))?;
    println!("{token}");
    Ok(())
}

fn keys(action: KeysAction, settings: &Settings) -> Result<(), String> {
    let dir = KeyDir::open(&settings.keys_dir).map_err(|e| e.to_string())?;
    match action {
        KeysAction::Generate => {
            let had_signer = dir
                .list()
                .map_err(|e| e.to_string())?
                .iter()
                .any(|k| k.active);
            let kid = dir.generate().map_err(|e| e.to_string())?;
            if !had_signer {
                dir.activate(&kid).map_err(|e| e.to_string())?;
            }
            println!("{kid}");
        }
        KeysAction::Rotate => println!(
            "{}",
            dir.rotate(chrono::Utc::now()).map_err(|e| e.to_string())?
        ),
        KeysAction::List => {
            let schedule = dir.schedule();
            for key in dir.list().map_err(|e| e.to_string())? {
                let created: chrono::DateTime<chrono::Utc> = key.created.into();
                let state = match schedule.state(&key) {
                    KeyState::Signing => "active",
                    KeyState::Published => "published",
                    KeyState::VerifyOnly => "verify-only",
                };
                let form = match key.form {
                    KeyForm::Standard => key.form.name().to_string(),
                    KeyForm::Legacy => {
                        format!("{} (old form: run `keys migrate`)", key.form.name())
                    }
                };
                println!("{}\t{}\t{state}\t{form}", key.kid, created.to_rfc3339());
            }
        }
        KeysAction::Migrate => {
            let migrated = dir.migrate().map_err(|e| e.to_string())?;
            for kid in &migrated {
                println!("{kid}\tmigrated to pkcs8-v1");
            }
            if migrated.is_empty() {
                println!("every key is already in the standard form (pkcs8-v1)");
            }
        }
    }
    Ok(())
}
