//! What people see: build progress on a terminal (a live view), one line per event for CI
//! logs, or nothing; and errors, with the build file's line quoted where there is one.
//!
//! Steps are labelled like BuildKit's (`[builder 2/5] COPY . .`); plain mode numbers them
//! (`#4 [builder 2/5] COPY . .`, then `#4 DONE 0.3s`) so interleaved output stays readable.
//! Everything here goes to stderr; stdout stays free for results (image IDs, JSON).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln::diagnostics;
use kiln::progress::{Event, Reporter};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// A live view, one spinner per running step.
    Tty,
    /// One line per event.
    Plain,
    /// Nothing but errors (and the frontend's warnings).
    Quiet,
}

/// Progress on stderr, in a [`Mode`].
pub struct Terminal {
    mode: Mode,
    multi: Option<MultiProgress>,
    /// The spinners of running steps (tty mode), by step number.
    bars: Mutex<HashMap<usize, ProgressBar>>,
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Terminal {
    /// A renderer for `mode` (`Auto` decides by whether stderr is a terminal).
    pub fn new(mode: Mode) -> Self {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            Mode::Auto => Mode::Plain,
            m => m,
        };
        let multi = (mode == Mode::Tty).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Terminal { mode, multi, bars: Mutex::new(HashMap::new()) }
    }

    fn line(&self, text: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    fn take_bar(&self, id: usize) -> Option<ProgressBar> {
        self.bars.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }
}

impl Reporter for Terminal {
    fn report(&self, event: Event<'_>) {
        match event {
            Event::Note { text } if self.mode != Mode::Quiet => self.line(text),
            Event::Note { .. } => {}
            Event::Warning { file_name, source, diagnostic } => {
                let _ = write!(std::io::stderr(), "{}", diagnostics::render(file_name, source, diagnostic));
            }
            Event::Started { id, label } => match (&self.multi, self.mode) {
                (Some(multi), _) => {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_message(label.to_string());
                    bar.enable_steady_tick(Duration::from_millis(100));
                    self.bars.lock().unwrap_or_else(|e| e.into_inner()).insert(id, bar);
                }
                (None, Mode::Plain) => self.line(&format!("#{id} {label}")),
                _ => {}
            },
            Event::Done { id, label, took, detail } => {
                let took = seconds(took);
                let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
                match self.take_bar(id) {
                    Some(bar) => {
                        bar.finish_and_clear();
                        self.line(&format!("✔ {label} {took}{detail}"));
                    }
                    None if self.mode == Mode::Plain => self.line(&format!("#{id} DONE {took}{detail}")),
                    None => {}
                }
            }
            Event::Cached { id, label } => match self.mode {
                Mode::Quiet => {}
                Mode::Plain => self.line(&format!("#{id} {label} CACHED")),
                _ => self.line(&format!("✔ {label} CACHED")),
            },
            Event::Failed { id, label, took, error } => match self.take_bar(id) {
                Some(bar) => {
                    bar.finish_and_clear();
                    self.line(&format!("✘ {label} {}", seconds(took)));
                }
                None if self.mode == Mode::Plain => self.line(&format!("#{id} ERROR: {error}")),
                None => {}
            },
        }
    }
}
