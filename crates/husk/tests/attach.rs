//! `husk attach` with input, through the monitor's attach socket: lines written reach the
//! container's stdin and come back, the detach keys leave it running, `create -i` +
//! `start -a -i` sees all output and closes stdin at our end of input, a tty container gets
//! our keys, and signals are forwarded without a tty. Run as root.

mod common;
use common::*;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// `husk attach ARGS` with pipes, and what it prints, as it comes.
struct Attached {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

fn spawn(root: &Path, args: &[&str]) -> Attached {
    let mut c = Command::new(HUSK);
    c.arg("--root").arg(root).args(args).env("HOME", root);
    spawn_cmd(c)
}

fn spawn_cmd(mut c: Command) -> Attached {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, out) = channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    Attached {
        stdin: child.stdin.take(),
        child,
        out,
        seen: Vec::new(),
    }
}

impl Attached {
    fn write(&mut self, data: &[u8]) {
        let s = self.stdin.as_mut().unwrap();
        s.write_all(data).unwrap();
        s.flush().unwrap();
    }

    /// Wait until the output so far contains `want`.
    fn expect(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&self.seen).contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(d) => self.seen.extend(d),
                Err(_) => panic!(
                    "no {want:?} in the output: {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    /// Its exit code, which it must give within 30 s (a loaded 2-core machine).
    fn exit_code(mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("attach did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn status(root: &Path, name: &str) -> String {
    container_state(root, name)["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn attach_sends_input_detaches_and_forwards_signals() {
    let s = setup("attach");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);

    // run -di: a line written through attach reaches cat and comes back.
    husk_ok(
        root,
        &[
            "run",
            "-di",
            "--network",
            "none",
            "--name",
            "a1",
            &image,
            "cat",
        ],
    );
    let mut a = spawn(root, &["attach", "a1"]);
    a.write(b"hello through the socket\n");
    a.expect("hello through the socket\n");
    // ctrl-p ctrl-q: attach ends (0), the container runs on.
    a.write(b"\x10\x11");
    assert_eq!(a.exit_code(), 0);
    assert_eq!(status(root, "a1"), "running");
    // Again, with keys of our own; a ctrl-p that is not followed by ctrl-q goes through.
    let mut a = spawn(root, &["attach", "--detach-keys", "ctrl-x", "a1"]);
    a.write(b"second\n");
    a.expect("second\n");
    a.write(b"\x18");
    assert_eq!(a.exit_code(), 0);
    // The end of our input does not close a `run -di` container's stdin; its exit ends
    // attach with its code.
    let mut a = spawn(root, &["attach", "a1"]);
    a.write(b"third\n");
    a.expect("third\n");
    husk_ok(root, &["kill", "a1"]);
    assert_eq!(a.exit_code(), 137);
    // Its log has what went through it.
    let logs = husk_ok(root, &["logs", "a1"]);
    assert_eq!(logs, "hello through the socket\nsecond\nthird\n");

    // create -i, then start -a -i: all the output, and our end of input is cat's.
    husk_ok(
        root,
        &[
            "create",
            "-i",
            "--network",
            "none",
            "--name",
            "a2",
            &image,
            "echo first; cat; echo done; exit 4",
        ],
    );
    let mut a = spawn(root, &["start", "-a", "-i", "a2"]);
    a.expect("first\n");
    a.write(b"one\n");
    a.expect("one\n");
    // Detaching is not the end of input: cat goes on reading.
    a.write(b"\x10\x11");
    assert_eq!(a.exit_code(), 0);
    assert_eq!(status(root, "a2"), "running");
    let mut a = spawn(root, &["attach", "a2"]);
    a.write(b"two\n");
    a.expect("two\n");
    drop(a.stdin.take());
    a.expect("done\n");
    assert_eq!(a.exit_code(), 4);

    // A tty container gets our keys (its pty echoes them); the detach keys still work.
    husk_ok(
        root,
        &[
            "run",
            "-dit",
            "--network",
            "none",
            "--name",
            "a3",
            &image,
            "sh",
        ],
    );
    let mut a = spawn(root, &["attach", "a3"]);
    a.write(b"echo sum-$((40+2))\n");
    a.expect("sum-42");
    a.write(b"\x10\x11");
    assert_eq!(a.exit_code(), 0);
    assert_eq!(status(root, "a3"), "running");
    // On a terminal (script's pty, 33x77), the container's pty takes our window size.
    let mut c = Command::new("script");
    c.args([
        "-qec",
        &format!(
            "stty rows 33 cols 77; {HUSK} --root {} attach a3",
            root.display()
        ),
        "/dev/null",
    ])
    .env("SHELL", "/bin/sh")
    .env("HOME", root);
    let mut a = spawn_cmd(c);
    std::thread::sleep(std::time::Duration::from_millis(500));
    a.write(b"stty size\n");
    a.expect("33 77");
    a.write(b"\x10\x11");
    assert_eq!(a.exit_code(), 0);

    // Without a tty, signals to attach go to the container (--sig-proxy, the default).
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "a4",
            &image,
            "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done",
        ],
    );
    let mut a = spawn(root, &["attach", "a4"]);
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(a.child.id() as i32, libc::SIGUSR1) };
    a.expect("got-usr1\n");
    husk_ok(root, &["kill", "a4"]);
    assert_eq!(a.exit_code(), 137);

    husk_ok(root, &["rm", "-f", "a1", "a2", "a3", "a4"]);
    assert!(containers(root).is_empty());
}
