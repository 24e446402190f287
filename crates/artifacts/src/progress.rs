//! The one progress display of every stage: a bar on a terminal; in a batch job, where stderr
//! is a file and a bar would show nothing, a log line at a steady interval with the count done,
//! the rate and the bar's message (a training job's loss and tokens/s).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle, WeakProgressBar};

/// How often a batch job logs its progress; `ENTANGLE_PROGRESS_SECONDS` overrides it.
const BATCH_INTERVAL: Duration = Duration::from_secs(30);

/// A progress bar over `len` units of `what` (e.g. "steps", "prompts"); when stderr is not a
/// terminal it is hidden and a thread logs its state every interval until it finishes or drops.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let template = format!("{{bar:30}} {{pos}}/{{len}} {what} {{elapsed}}<{{eta}} {{msg}}");
        let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
        return ProgressBar::new(len).with_style(style);
    }
    let bar = ProgressBar::hidden();
    bar.set_length(len);
    log_every(&bar, what, batch_interval());
    bar
}

fn batch_interval() -> Duration {
    std::env::var("ENTANGLE_PROGRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(BATCH_INTERVAL, Duration::from_secs_f64)
}

/// Logs `bar`'s progress every `interval` from a thread of its own, which ends with the bar.
fn log_every(bar: &ProgressBar, what: &str, interval: Duration) {
    let (weak, what) = (bar.downgrade(), what.to_owned());
    let started = Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(interval);
        let Some(line) = progress_line(&weak, &what, started) else {
            return;
        };
        tracing::info!("{line}");
    });
}

/// The line logged for the bar, `None` once it is finished or gone.
fn progress_line(weak: &WeakProgressBar, what: &str, started: Instant) -> Option<String> {
    let bar = weak.upgrade().filter(|bar| !bar.is_finished())?;
    let (done, seconds) = (bar.position(), started.elapsed().as_secs_f64());
    let total = bar.length().map_or_else(|| "?".to_owned(), |len| len.to_string());
    let message = bar.message();
    let rate = done as f64 / seconds.max(1e-9);
    Some(format!("{done}/{total} {what} ({rate:.2}/s){}", if message.is_empty() { String::new() } else { format!(" {message}") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_bar_reports_its_state_until_it_finishes() {
        let bar = ProgressBar::hidden();
        bar.set_length(10);
        bar.inc(4);
        bar.set_message("loss 1.2500");
        let started = Instant::now() - Duration::from_secs(2);
        let line = progress_line(&bar.downgrade(), "steps", started).unwrap();
        assert!(line.starts_with("4/10 steps (") && line.ends_with("/s) loss 1.2500"), "{line}");
        bar.finish_and_clear();
        assert!(progress_line(&bar.downgrade(), "steps", started).is_none());
        let weak = ProgressBar::hidden().downgrade();
        assert!(progress_line(&weak, "steps", started).is_none(), "a dropped bar ends the logging");
    }
}
