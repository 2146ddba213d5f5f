//! Progress of the repository and blob transfers: `indicatif` bars when stderr is a terminal,
//! otherwise a plain line every few seconds and one when the transfer ends (logs stay readable).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// One transfer's progress: a byte count, and for blobs an item count out of a total.
pub(crate) struct Progress {
    label: &'static str,
    bar: Option<ProgressBar>,
    items: AtomicU64,
    total_items: Option<u64>,
    bytes: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    /// A byte counter (the repository CAR, of unknown size).
    pub(crate) fn bytes(label: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {prefix}: {bytes} ({bytes_per_sec}, {elapsed})",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(label);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress::with_bar(label, bar, None)
    }

    /// An item counter out of `total` items, with their bytes (the blobs).
    pub(crate) fn items(label: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix}: [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress::with_bar(label, bar, Some(total))
    }

    fn with_bar(label: &'static str, bar: Option<ProgressBar>, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            label,
            bar,
            items: AtomicU64::new(0),
            total_items: total,
            bytes: AtomicU64::new(0),
            started: now,
            last_line: Mutex::new(now),
        }
    }

    /// Counts `n` more bytes.
    pub(crate) fn add_bytes(&self, n: u64) {
        let bytes = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        match &self.bar {
            Some(bar) if self.total_items.is_none() => bar.set_position(bytes),
            Some(bar) => bar.set_message(human_bytes(bytes)),
            None => self.maybe_line(),
        }
    }

    /// Counts one more finished item.
    pub(crate) fn add_item(&self) {
        self.items.fetch_add(1, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.inc(1),
            None => self.maybe_line(),
        }
    }

    /// Items finished so far.
    pub(crate) fn item_count(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    /// Bytes counted so far.
    pub(crate) fn byte_count(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Prints a message above the bar (or as a plain line).
    pub(crate) fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => println!("{message}"),
        }
    }

    /// Ends the display with a last line.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        println!("  {}", self.line());
    }

    fn maybe_line(&self) {
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if last.elapsed() >= PLAIN_INTERVAL {
            *last = Instant::now();
            println!("  {}", self.line());
        }
    }

    fn line(&self) -> String {
        let bytes = self.byte_count();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = human_bytes((bytes as f64 / secs) as u64);
        let items = match self.total_items {
            Some(total) => format!("{}/{} ", self.item_count(), total),
            None => String::new(),
        };
        format!(
            "{}: {items}{} in {:.1} s ({rate}/s)",
            self.label,
            human_bytes(bytes),
            secs
        )
    }
}

/// `1.5 MiB` and the like.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
