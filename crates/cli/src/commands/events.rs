//! `rbuild events [--since] [--until] [--filter K=V] [--format json|TEMPLATE]`: what every
//! rbuild process did to containers, images and volumes (the store's event journal), past
//! and then live, in docker's wording.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use rbuild_engine::Event;

use super::Globals;

/// Arguments of `rbuild events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show events since this time (RFC 3339, Unix seconds, or a duration ago: 10m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stream events until this time
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Filter: type=, event=, container=, image=, volume=, label=
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output: json, or a template ({{.Type}}, {{.Action}}, {{.Actor.ID}}, {{json .}})
    #[arg(long)]
    pub format: Option<String>,
}

/// Docker's line: `TIME TYPE ACTION ID (k=v, ...)`.
fn line(e: &Event) -> String {
    let secs = e.time_nano.div_euclid(1_000_000_000);
    let nanos = e.time_nano.rem_euclid(1_000_000_000);
    let time = rbuild_builder::config::rfc3339(secs, 0);
    let time = format!("{}.{nanos:09}Z", time.trim_end_matches('Z'));
    let kind = serde_json::to_value(e.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let attrs: Vec<String> = e
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if attrs.is_empty() {
        format!("{time} {kind} {} {}", e.action, e.actor.id)
    } else {
        format!(
            "{time} {kind} {} {} ({})",
            e.action,
            e.actor.id,
            attrs.join(", ")
        )
    }
}

/// How events are printed: docker's line, JSON, or a Go template.
enum Output {
    Line,
    Json,
    Template(crate::template::Template),
}

fn render(e: &Event, format: &Output) -> anyhow::Result<String> {
    let v = serde_json::to_value(e).unwrap_or_default();
    Ok(match format {
        Output::Line => line(e),
        Output::Json => v.to_string(),
        Output::Template(t) => {
            // docker's `events.Message` field names, the deprecated ones too.
            let data = serde_json::json!({
                "Type": v["Type"], "Action": e.action, "Actor": v["Actor"], "Scope": e.scope,
                "Time": e.time, "TimeNano": e.time_nano, "Status": e.action,
                "ID": e.actor.id, "From": e.actor.attributes.get("image").cloned().unwrap_or_default(),
            });
            t.render(&data)?
        }
    })
}

/// Run `rbuild events`.
pub fn run(args: EventsArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let filters: Vec<(String, String)> = args
        .filter
        .iter()
        .map(|f| {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("bad format of filter (expected name=value): {f}")
            })?;
            if !matches!(
                k,
                "type" | "event" | "action" | "container" | "image" | "volume" | "label"
            ) {
                anyhow::bail!("invalid filter '{k}'");
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect::<anyhow::Result<_>>()?;
    let when = |s: &Option<String>, flag: &str| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|v| {
                rbuild_engine::options::parse_when(v).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
            })
            .transpose()
    };
    let since = when(&args.since, "since")?;
    let until = when(&args.until, "until")?;
    let journal = super::common::engine(globals).journal();
    let now = rbuild_runner::lifecycle::time::now_ns();
    let start = journal.end();
    let mut out = std::io::stdout().lock();
    let format = match args.format.as_deref() {
        None => Output::Line,
        Some("json") => Output::Json,
        Some(t) => Output::Template(crate::template::Template::parse(t)?),
    };
    if since.is_some() || until.is_some() {
        for e in journal.read(since, until.map(|u| u.min(now))) {
            if e.matches(&filters) {
                writeln!(out, "{}", render(&e, &format)?)?;
            }
        }
    }
    out.flush()?;
    if until.is_some_and(|u| u <= now) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    journal.follow(start, Duration::from_millis(50), |e| {
        if until.is_some_and(|u| e.time_nano >= u) {
            return false;
        }
        if e.matches(&filters) {
            let ok = match render(&e, &format) {
                Ok(text) => writeln!(out, "{text}").and_then(|_| out.flush()).is_ok(),
                Err(err) => {
                    crate::report::print_error(&err);
                    false
                }
            };
            failed = !ok;
            return ok;
        }
        true
    });
    Ok(ExitCode::SUCCESS)
}
