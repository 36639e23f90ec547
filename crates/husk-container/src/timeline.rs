//! Per-phase timestamps of a create, asked for with [`crate::ContainerBuilder::timeline`]
//! (`husk-runtime --debug` prints them): where the milliseconds of a `run` go, measured
//! in the process that spends them, without strace's or perf's overhead
//! (docs/architecture.md, "Where the time of `run` goes").
//!
//! CLOCK_MONOTONIC is the same clock in every process of the machine, so init's marks
//! (sent over the channel before `Ready`) line up with the main process's.

use std::cell::RefCell;

/// A list of (phase, CLOCK_MONOTONIC ns at its end); a no-op unless enabled.
#[derive(Debug, Default)]
pub struct Timeline {
    marks: Option<RefCell<Vec<(String, u64)>>>,
}

impl Timeline {
    pub fn new(enabled: bool) -> Timeline {
        Timeline {
            marks: enabled.then(|| RefCell::new(Vec::new())),
        }
    }

    pub fn enabled(&self) -> bool {
        self.marks.is_some()
    }

    /// `what` just ended.
    pub fn mark(&self, what: &str) {
        if let Some(m) = &self.marks {
            m.borrow_mut().push((what.to_string(), now_ns()));
        }
    }

    /// Marks taken in another process (init's), merged in time order.
    pub fn extend(&self, other: Vec<(String, u64)>) {
        if let Some(m) = &self.marks {
            let mut m = m.borrow_mut();
            m.extend(other);
            m.sort_by_key(|(_, t)| *t);
        }
    }

    pub fn take(&self) -> Vec<(String, u64)> {
        self.marks
            .as_ref()
            .map(|m| std::mem::take(&mut *m.borrow_mut()))
            .unwrap_or_default()
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the vDSO: no syscall).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_records_nothing_and_enabled_keeps_time_order() {
        let off = Timeline::new(false);
        off.mark("a");
        assert!(off.take().is_empty());
        let on = Timeline::new(true);
        on.mark("a");
        let later = now_ns();
        on.extend(vec![("init".into(), later), ("early".into(), 0)]);
        on.mark("b");
        let names: Vec<_> = on.take().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["early", "a", "init", "b"]);
    }
}
