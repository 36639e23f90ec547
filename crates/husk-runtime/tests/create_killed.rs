//! `create` SIGKILLed at random instants, then `delete --force`: nothing may be left — no
//! cgroup directory in any hierarchy, no mount, no process, no state dir. `create` notes
//! the cgroup path in the state dir before it makes the cgroup (and, for a container
//! without a mount namespace, the rootfs bind before attaching it in ours), so this holds
//! whenever the kill lands. Every other round has no mount namespace: its mounts are made
//! in this test's (the host's) mount namespace, where a leak would show. The instants come from a seeded generator; the seed is printed, and
//! HUSK_KILL_SEED=N replays a run.
//!
//! This binary holds this one test: it reaps every orphan (it is their subreaper), which
//! would steal the exit status of other tests' children.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Enough kills to land in every step of a ~20 ms create several times over
/// (HUSK_KILL_ROUNDS=N: fewer in the slow, emulated VM, where cgroup v2 is tested).
const ROUNDS: usize = 300;
/// The whole test stops after this, however many rounds it has done (a loaded CI machine).
const BUDGET: Duration = Duration::from_secs(30);

/// splitmix64: a few lines, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Reap every exited child (orphaned inits come to us as their subreaper).
fn reap_all() {
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

/// Host processes whose command line names `id` (husk's own carry it in argv; a
/// container's process never execs without `start`).
fn processes_of(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.split(' ').any(|w| w == id) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn create_killed_at_any_instant_leaves_nothing_delete_force_cannot_remove() {
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let seed = std::env::var("HUSK_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("create_killed: seed {seed} (HUSK_KILL_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let target = std::env::var("HUSK_KILL_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ROUNDS);
    let ctx = Ctx::new("killed", &["sleep", "1000"], |_| {});
    let nomnt = Ctx::new("killednomnt", &["sleep", "1000"], without_mount_ns);
    let rootfs = rootfs().to_str().unwrap().to_string();
    let our_mounts = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&rootfs))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mounts_before = our_mounts();

    // How long an undisturbed create takes here (the faster of two: the first one pays
    // for cold caches): the kills are spread over that.
    let mut full = Duration::MAX;
    for _ in 0..2 {
        let t0 = Instant::now();
        assert!(ctx.rt_detached(&["create", &ctx.id]).status.success());
        full = full.min(t0.elapsed());
        assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    }
    ctx.assert_clean();
    let span_us = (full.as_micros() as u64).max(1000);

    let start = Instant::now();
    let mut rounds = 0;
    let mut finished = 0;
    while rounds < target && start.elapsed() < BUDGET {
        let id = format!("{}-{rounds}", ctx.id);
        let delay = Duration::from_micros(rng.below(span_us));
        let bundle = if rounds % 2 == 0 { &ctx } else { &nomnt };
        let mut child = bundle
            .cmd(&["create", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        finished += status.success() as usize;

        let out = bundle.rt(&["delete", "--force", &id]);
        assert!(
            out.status.success(),
            "seed {seed}, round {rounds} (kill after {delay:?}): delete --force failed: {}",
            text(&out)
        );
        assert!(
            !bundle.root.join(&id).exists(),
            "seed {seed}, round {rounds} (kill after {delay:?}): state dir left"
        );
        assert_no_cgroup(&id);
        assert_eq!(
            our_mounts(),
            mounts_before,
            "seed {seed}, round {rounds} (kill after {delay:?}): mounts left"
        );
        // What was outside the cgroup when it was killed (a child that had not joined yet)
        // exits by itself once it sees the runtime gone; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            reap_all();
            let left = processes_of(&id);
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}, round {rounds} (kill after {delay:?}): processes left: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        rounds += 1;
    }
    reap_all();
    eprintln!(
        "create_killed: {rounds} rounds in {:?}, {finished} creates finished before the kill",
        start.elapsed()
    );
    assert!(
        rounds >= (target / 2).min(50),
        "only {rounds} rounds in {BUDGET:?}"
    );
}
