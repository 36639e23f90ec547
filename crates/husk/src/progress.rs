//! Per-layer progress bars on a terminal.

use husk_image::pull::Progress;
use husk_image::Digest;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;

pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, d: &Digest, size: u64) -> ProgressBar {
        let mut m = self.bars.lock().unwrap();
        m.entry(d.clone())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(size));
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                    )
                    .unwrap()
                    .progress_chars("=> "),
                );
                b.set_prefix(format!("blob {}", &d.hex()[..12]));
                b
            })
            .clone()
    }
}

impl Progress for Bars {
    fn message(&self, msg: &str) {
        let _ = self.multi.println(msg);
    }
    fn layer_start(&self, d: &Digest, size: u64, resumed_from: u64) {
        let b = self.bar(d, size);
        b.set_length(size);
        b.set_position(resumed_from);
    }
    fn layer_advance(&self, d: &Digest, n: u64) {
        self.bar(d, 0).inc(n);
    }
    fn layer_done(&self, d: &Digest, status: &str) {
        let b = self.bar(d, 0);
        b.finish_with_message(status.to_string());
    }
}
