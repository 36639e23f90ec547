//! The foreground terminal proxy: `run` and `exec -t` with a terminal but no
//! --console-socket. `script` gives husk-runtime a pty of its own; its size is set with
//! `stty` before husk starts, and must be the size the container sees.

mod common;
use common::*;
use serde_json::Value;
use std::process::Output;

/// `sh -c CMD` under `script`, which runs it on a fresh pty; (exit code, output).
fn script(cmd: &str) -> (Output, String) {
    let o = on_a_terminal(cmd).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    (o, out)
}

fn husk(c: &Ctx) -> String {
    format!("{BIN} --root {}", c.root.display())
}

#[test]
fn run_in_the_foreground_proxies_a_terminal() {
    let c = Ctx::new(
        "tty-run",
        &["sh", "-c", "stty size; tty; echo out-ok; exit 5"],
        |s| s["process"]["terminal"] = Value::from(true),
    );
    let (o, out) = script(&format!(
        "stty rows 33 cols 101; saved=$(stty -g); {} run --bundle {} {}; rc=$?; \
         [ \"$(stty -g)\" = \"$saved\" ] && echo restored; exit $rc",
        husk(&c),
        c.bundle.display(),
        c.id
    ));
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let lines: Vec<&str> = out.lines().collect();
    // The terminal is back in its own mode afterwards.
    assert_eq!(
        lines,
        ["33 101", "/dev/pts/0", "out-ok", "restored"],
        "{}",
        text(&o)
    );
    c.assert_clean();
}

#[test]
fn window_size_changes_follow_sigwinch() {
    let c = Ctx::new("tty-winch", &["sh", "-c", "sleep 2; stty size"], |s| {
        s["process"]["terminal"] = Value::from(true)
    });
    let (o, out) = script(&format!(
        "stty rows 33 cols 101; (sleep 0.7; stty rows 20 cols 60 </dev/tty) & \
         {} run --bundle {} {}",
        husk(&c),
        c.bundle.display(),
        c.id
    ));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(out.trim(), "20 60", "{}", text(&o));
    c.assert_clean();
}

#[test]
fn exec_t_proxies_a_terminal() {
    let c = Ctx::new("tty-exec", &["sleep", "1000"], |_| {});
    let o = c.rt_detached(&["run", "-d", &c.id]);
    assert!(o.status.success(), "{}", text(&o));
    let (o, out) = script(&format!(
        "stty rows 33 cols 101; {} exec -t {} sh -c 'stty size; tty; exit 4'",
        husk(&c),
        c.id
    ));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["33 101", "/dev/pts/0"], "{}", text(&o));
    let _ = c.rt(&["delete", "--force", &c.id]);
    c.assert_clean();
}

#[test]
fn exec_t_passes_exit_code_and_input() {
    let c = Ctx::new("tty-exec2", &["sleep", "1000"], |_| {});
    let o = c.rt_detached(&["run", "-d", &c.id]);
    assert!(o.status.success(), "{}", text(&o));
    // Input typed on our terminal reaches the process (printf feeds script's pty master).
    let o = on_a_terminal(&format!(
        "{} exec -t {} sh -c 'read x; echo got-$x; exit 6'",
        husk(&c),
        c.id
    ))
    .spawn()
    .unwrap();
    let mut o = o;
    std::io::Write::write_all(o.stdin.as_mut().unwrap(), b"abc\r").unwrap();
    let o = o.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert_eq!(o.status.code(), Some(6), "{out}");
    assert!(out.contains("got-abc"), "{out}");
    let _ = c.rt(&["delete", "--force", &c.id]);
    c.assert_clean();
}
