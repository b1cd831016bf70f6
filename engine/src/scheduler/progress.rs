//! The console progress bar, as Spark's: `[Stage 3:=====>      (12 + 2) / 40]` on stderr.
//!
//! Drawn only when stderr is a terminal and the stage has run for half a second, redrawn at most
//! five times a second, erased when the stage ends.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::ids::StageId;

const WIDTH: usize = 40;

pub(crate) struct ConsoleProgress {
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl ConsoleProgress {
    pub(crate) fn new(enabled: bool) -> Self {
        ConsoleProgress {
            enabled: enabled && std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_draw: None,
            drawn: false,
        }
    }

    /// Whether a redraw would happen now (cheap; callers check it before gathering counts).
    pub(crate) fn is_due(&self) -> bool {
        self.enabled
            && self.started.elapsed() >= Duration::from_millis(500)
            && self.last_draw.is_none_or(|t| t.elapsed() >= Duration::from_millis(200))
    }

    pub(crate) fn update(&mut self, stage: StageId, done: usize, running: usize, total: usize) {
        if !self.is_due() {
            return;
        }
        self.last_draw = Some(Instant::now());
        let line = render(stage, done, running, total);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    pub(crate) fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{}\r", " ".repeat(WIDTH + 40));
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// `[Stage 3:=========>          (12 + 2) / 40]`: finished tasks as `=`, running ones counted.
fn render(stage: StageId, done: usize, running: usize, total: usize) -> String {
    let filled = (WIDTH * done).checked_div(total).unwrap_or(WIDTH).min(WIDTH);
    let bar: String = (0..WIDTH)
        .map(|i| match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        })
        .collect();
    format!("[Stage {stage}:{bar}({done} + {running}) / {total}]")
}

impl Drop for ConsoleProgress {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_finished_and_running_tasks_as_spark_does() {
        let line = render(StageId(3), 12, 2, 40);
        assert_eq!(
            line,
            format!("[Stage 3:{}>{}(12 + 2) / 40]", "=".repeat(12), " ".repeat(27))
        );
        assert_eq!(
            render(StageId(0), 0, 2, 2),
            format!("[Stage 0:>{}(0 + 2) / 2]", " ".repeat(39))
        );
        assert_eq!(
            render(StageId(1), 5, 0, 5),
            format!("[Stage 1:{}(5 + 0) / 5]", "=".repeat(40))
        );
    }

    #[test]
    fn nothing_is_drawn_when_stderr_is_not_a_terminal_or_progress_is_off() {
        // Tests run with stderr captured (not a terminal) or with progress off: never due.
        let mut off = ConsoleProgress::new(false);
        assert!(!off.is_due());
        off.update(StageId(1), 1, 1, 2);
        assert!(!off.drawn);
    }
}
