//! The `log-capturer` binary: parses the command line, loads the configuration, installs
//! the signal thread, and runs the library. Exit codes: 0 clean stop, 1 fatal runtime
//! error, 2 usage or configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use log_capturer::config::Config;
use log_capturer::shutdown::Shutdown;
use log_capturer::threads;
use log_capturer::ReloadSource;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

const USAGE: &str = "\
log-capturer: follows the logs of every container on the local Docker Engine.

Usage:
  log-capturer [--config PATH]                  run until SIGTERM/SIGINT; SIGHUP reloads
  log-capturer --check-config [--config PATH]   validate, print the effective config, exit
  log-capturer --version | --help
";

struct Args {
    config: Option<PathBuf>,
    check: bool,
}

enum Parsed {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args() -> Parsed {
    let mut args = Args {
        config: None,
        check: false,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--help") | Some("-h") => {
                print!("{USAGE}");
                return Parsed::Exit(ExitCode::SUCCESS);
            }
            Some("--version") | Some("-V") => {
                println!("log-capturer {}", env!("CARGO_PKG_VERSION"));
                return Parsed::Exit(ExitCode::SUCCESS);
            }
            Some("--check-config") => args.check = true,
            Some("--config") => match it.next() {
                Some(p) => args.config = Some(PathBuf::from(p)),
                None => return usage_error("--config needs a PATH"),
            },
            Some(s) if s.starts_with("--config=") => {
                args.config = Some(PathBuf::from(&s["--config=".len()..]));
            }
            _ => return usage_error(&format!("unexpected argument {arg:?}")),
        }
    }
    Parsed::Run(args)
}

fn usage_error(msg: &str) -> Parsed {
    eprintln!("log-capturer: {msg}\n\n{USAGE}");
    Parsed::Exit(ExitCode::from(2))
}

fn main() -> ExitCode {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // ureq's trace level prints wire data unredacted (the sinks' Authorization headers):
    // when RUST_LOG asks for trace anywhere, cap ureq at debug (which redacts).
    if std::env::var("RUST_LOG").is_ok_and(|v| v.to_ascii_lowercase().contains("trace")) {
        logger
            .filter_module("ureq", log::LevelFilter::Debug)
            .filter_module("ureq_proto", log::LevelFilter::Debug);
    }
    logger.init();
    let args = match parse_args() {
        Parsed::Run(a) => a,
        Parsed::Exit(code) => return code,
    };
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("log-capturer: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        for warning in config.insecure_sinks() {
            eprintln!("log-capturer: warning: {warning}");
        }
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    run(&config, args.config)
}

fn run(config: &Config, config_path: Option<PathBuf>) -> ExitCode {
    let shutdown = Shutdown::new();
    let (reload_tx, reload_rx) = crossbeam_channel::bounded(1);
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("log-capturer: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let handle = signals.handle();
    let on_signal = shutdown.clone();
    let signal_thread = threads::spawn("signals".into(), threads::SERVICE_STACK, move || {
        let mut seen = 0;
        for sig in signals.forever() {
            if sig == SIGHUP {
                // One request waits at most; more SIGHUPs meanwhile coalesce into it.
                let _ = reload_tx.try_send(());
                continue;
            }
            seen += 1;
            if seen == 1 {
                log::info!("signal {sig}: stopping (send again to stop at once)");
                on_signal.trigger();
            } else {
                log::warn!("second signal: stopping now; positions stay as last acknowledged");
                std::process::exit(1);
            }
        }
    });
    let signal_thread = match signal_thread {
        Ok(t) => t,
        Err(e) => {
            eprintln!("log-capturer: cannot spawn the signal thread: {e}");
            return ExitCode::from(1);
        }
    };
    let reload = ReloadSource {
        path: config_path,
        requests: reload_rx,
    };
    let result = log_capturer::run(config, shutdown, Some(reload));
    handle.close();
    let _ = signal_thread.join();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("log-capturer: {e}");
            ExitCode::from(1)
        }
    }
}
