//! systemd hand-offs: socket activation (LISTEN_FDS/LISTEN_PID) and NOTIFY_SOCKET.

mod common;
use common::*;
use std::process::Command;

#[test]
fn listen_fds_are_passed_with_their_env() {
    let ctx = Ctx::new(
        "listen",
        &["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3; cat <&4"],
        |_| {},
    );
    let (a, b) = (ctx.bundle.join("a"), ctx.bundle.join("b"));
    std::fs::write(&a, "first\n").unwrap();
    std::fs::write(&b, "second\n").unwrap();
    // `exec` keeps the shell's pid, so LISTEN_PID=$$ names husk-runtime, as systemd would.
    let script = format!(
        "LISTEN_PID=$$ LISTEN_FDS=2 exec {BIN} --root {} run {} 3<{} 4<{}",
        ctx.root.display(),
        ctx.id,
        a.display(),
        b.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(&ctx.bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 1\nfirst\nsecond\n");

    // LISTEN_PID naming another process: nothing is passed, fd 3 is closed inside.
    let ctx = Ctx::new(
        "listenother",
        &["sh", "-c", "echo [$LISTEN_FDS]; cat <&3 || echo closed"],
        |_| {},
    );
    let script = format!(
        "LISTEN_PID=1 LISTEN_FDS=1 exec {BIN} --root {} run {} 3<{}",
        ctx.root.display(),
        ctx.id,
        a.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(&ctx.bundle)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("[]\n") && stdout.contains("closed"),
        "{}",
        text(&out)
    );
    ctx.assert_clean();
}

#[test]
fn notify_socket_reaches_the_container() {
    let ctx = Ctx::new(
        "notify",
        &[
            "sh",
            "-c",
            "echo $NOTIFY_SOCKET; test -S $NOTIFY_SOCKET && echo socket",
        ],
        |_| {},
    );
    let sock = ctx.bundle.join("notify.sock");
    let _listener = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    let out = ctx
        .cmd(&["run", &ctx.id])
        .env("NOTIFY_SOCKET", &sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/run/notify/notify.sock\nsocket\n"
    );
    ctx.assert_clean();

    // A datagram sent from inside reaches the host's socket. busybox has no sd_notify tool,
    // but its `logger` writes one datagram to /dev/log: point /dev/log at the same socket.
    let ctx = Ctx::new("notifysend", &["logger", "READY=1"], |spec| {
        spec["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/dev/log", "type": "bind", "source": "/run/notify-placeholder", "options": ["bind"]
        }));
    });
    let sock = ctx.bundle.join("notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx.bundle.join("config.json")).unwrap()).unwrap();
    for m in cfg["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev/log" {
            m["source"] = serde_json::json!(sock);
        }
    }
    std::fs::write(ctx.bundle.join("config.json"), cfg.to_string()).unwrap();
    let mut buf = [0u8; 512];
    assert!(
        listener.recv(&mut buf).is_err(),
        "a message arrived before the container ran"
    );
    let out = ctx
        .cmd(&["run", &ctx.id])
        .env("NOTIFY_SOCKET", &sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let n = listener
        .recv(&mut buf)
        .expect("the container's datagram reached the host socket");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    ctx.assert_clean();

    // A NOTIFY_SOCKET that is not a socket is a clear error.
    let ctx = Ctx::new("notifybad", &["true"], |_| {});
    let out = ctx
        .cmd(&["run", &ctx.id])
        .env("NOTIFY_SOCKET", ctx.bundle.join("config.json"))
        .output()
        .unwrap();
    assert_one_line_error(&out, "is not a socket");
    ctx.assert_clean();
}
