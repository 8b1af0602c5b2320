//! Containers' output with docker compose's `service-N  | ` prefixes: `logs [-f]` and
//! attached `up` (until every container ends, or Ctrl-C stops them).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Attached `up`: the containers' output multiplexed until they all end, or until Ctrl-C
/// (then they are stopped, as docker compose does).
pub(super) fn attached(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    containers: &[Container],
) -> anyhow::Result<ExitCode> {
    static INTERRUPTED: AtomicBool = AtomicBool::new(false);
    extern "C" fn on_signal(_: i32) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_signal),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &action) };
    }
    let width = prefix_width(containers);
    let handles: Vec<_> = containers
        .iter()
        .map(|c| {
            let c = c.clone();
            let engine = engine.clone();
            let prefix = prefix(&c, width);
            std::thread::spawn(move || {
                let from = LogPosition::end_of(&c);
                for e in engine.logs(&c, &rbuild_engine::LogOptions::default()) {
                    print_entry(&prefix, &e, false);
                }
                let _ = engine.follow_logs(&c, from, |e| print_entry(&prefix, e, false));
            })
        })
        .collect();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            let services: Vec<String> = Vec::new();
            rt.stop(&services, None)?;
            return Ok(ExitCode::from(130));
        }
        if handles.iter().all(|h| h.is_finished()) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A container's log prefix: its name without the project (`web-1`).
pub(super) fn short_name(c: &Container) -> String {
    let project = c
        .record
        .labels
        .get(rbuild_compose::runtime::labels::PROJECT)
        .cloned()
        .unwrap_or_default();
    c.name()
        .strip_prefix(&format!("{project}-"))
        .unwrap_or(c.name())
        .to_owned()
}

pub(super) fn prefix_width(cs: &[Container]) -> usize {
    cs.iter().map(|c| short_name(c).len()).max().unwrap_or(0)
}

pub(super) fn prefix(c: &Container, width: usize) -> String {
    format!("{:width$}  | ", short_name(c))
}

pub(super) fn print_entry(prefix: &str, e: &LogEntry, timestamps: bool) {
    let mut text = String::new();
    for line in e.log.split_inclusive('\n') {
        text.push_str(prefix);
        if timestamps {
            text.push_str(&e.time);
            text.push(' ');
        }
        text.push_str(line);
        if !line.ends_with('\n') {
            text.push('\n');
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

pub(super) fn logs(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    a: LogsArgs,
) -> anyhow::Result<ExitCode> {
    let tail = match a.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .with_context(|| format!("--tail {n:?}: expected a number or \"all\""))?,
        ),
    };
    let cs: Vec<Container> = rt
        .service_containers(&a.services)?
        .into_iter()
        .map(|c| c.container().clone())
        .collect();
    let width = prefix_width(&cs);
    let opts = rbuild_engine::LogOptions {
        tail,
        ..Default::default()
    };
    let handles: Vec<_> = cs
        .into_iter()
        .map(|c| {
            let engine = engine.clone();
            let prefix = if a.no_log_prefix {
                String::new()
            } else {
                prefix(&c, width)
            };
            let (follow, ts) = (a.follow, a.timestamps);
            std::thread::spawn(move || {
                let from = LogPosition::end_of(&c);
                for e in engine.logs(&c, &opts) {
                    print_entry(&prefix, &e, ts);
                }
                if follow {
                    let _ = engine.follow_logs(&c, from, |e| print_entry(&prefix, e, ts));
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(ExitCode::SUCCESS)
}
