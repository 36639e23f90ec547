//! `husk` as an ordinary user (husk-rootless, from scripts/rootless-user.sh) against a real
//! docker-registry on 127.0.0.1: pull with owners shifted into the user's subordinate ids,
//! run (foreground, -it, -d), exec, logs, ps, stop, rm; and each actionable rootless error.
//! Nothing may be left on the host: no mount, no state, no container dir.
//!
//! Where the network tests send traffic: pasta and rootless bridge networks run only in a
//! network namespace the test makes ([`TestNetns`]: loopback and a veth pair whose both ends
//! stay inside, its default route to an address nobody has), husk is started there with
//! `ip netns exec`, and every probe (wget, the udp echo) runs there too; nothing in it
//! leads to the machine's interfaces, so no packet can leave the machine.

mod common;
#[path = "../../husk-runtime/tests/common/users.rs"]
mod users;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use users::{users, User, SUB_START};

/// husk where any user can run it (the build tree may sit below a private home).
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let t = TempDir::new("rootless-bin");
        let dir = t.0.clone();
        std::mem::forget(t); // lives as long as the test binary
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::copy(HUSK, dir.join("husk")).unwrap();
        dir
    })
}

/// The user's world for one test: XDG data/config dirs of its own, so the store is fresh.
struct Rootless {
    user: &'static User,
    home: PathBuf,
    path: String,
}

impl Rootless {
    fn new(user: &'static User, tag: &str) -> Rootless {
        let home = Path::new(&format!("/home/{}", user.name))
            .join(format!("husk-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).unwrap();
        let run = home.join("run");
        std::fs::create_dir(&run).unwrap();
        std::os::unix::fs::chown(&run, Some(user.uid), Some(user.gid)).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Rootless {
            user,
            home,
            path: format!("{}:/usr/bin:/bin", bin_dir().display()),
        }
    }

    /// XDG_RUNTIME_DIR of this test alone, so state checks see only its containers.
    fn runtime_dir(&self) -> PathBuf {
        self.home.join("run")
    }

    fn store(&self) -> PathBuf {
        self.home.join("data/husk")
    }

    fn husk(&self, args: &[&str]) -> Output {
        self.husk_env(&[], args)
    }

    fn husk_env(&self, extra: &[&str], args: &[&str]) -> Output {
        let mut env = vec![
            format!("XDG_RUNTIME_DIR={}", self.runtime_dir().display()),
            format!("XDG_DATA_HOME={}", self.home.join("data").display()),
            format!("XDG_CONFIG_HOME={}", self.home.join("config").display()),
        ];
        env.extend(extra.iter().map(|e| e.to_string()));
        let mut c = self.user.command(&self.path, &env, "husk");
        c.args(args).current_dir(&self.home);
        c.output().unwrap()
    }

    /// [`Rootless::husk`] inside the network namespace `ns` (made by [`TestNetns`]).
    fn husk_in(&self, ns: &TestNetns, args: &[&str]) -> Output {
        let env = [
            format!("XDG_RUNTIME_DIR={}", self.runtime_dir().display()),
            format!("XDG_DATA_HOME={}", self.home.join("data").display()),
            format!("XDG_CONFIG_HOME={}", self.home.join("config").display()),
        ];
        let c = self.user.command(&self.path, &env, "husk");
        let mut wrapped = std::process::Command::new("ip");
        wrapped
            .args(["netns", "exec", &ns.name])
            .arg(c.get_program())
            .args(c.get_args())
            .args(args)
            .current_dir(&self.home)
            .stdin(std::process::Stdio::null());
        wrapped.output().unwrap()
    }

    fn ok_in(&self, ns: &TestNetns, args: &[&str]) -> String {
        let o = self.husk_in(ns, args);
        assert!(
            o.status.success(),
            "husk {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.husk(args);
        assert!(
            o.status.success(),
            "husk {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The error line of a failed command (warnings may precede it).
    fn err(&self, args: &[&str]) -> String {
        let o = self.husk(args);
        assert!(!o.status.success(), "husk {args:?} should fail");
        let e = String::from_utf8_lossy(&o.stderr);
        e.lines()
            .find(|l| l.starts_with("husk: "))
            .unwrap_or_else(|| panic!("no error line in {e:?}"))
            .to_string()
    }

    fn assert_nothing_left(&self) {
        assert!(containers(&self.store()).is_empty(), "container dirs left");
        assert!(
            mounts_below(&self.home).is_empty(),
            "mounts left on the host"
        );
        let engine = self.runtime_dir().join("husk-engine");
        // userns.pid/.lock: the namespace holder, which lives on by design (see Drop).
        let left: Vec<_> = std::fs::read_dir(&engine)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name())
                    .filter(|n| !n.to_string_lossy().starts_with("userns."))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "runtime state left: {left:?}");
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        for dir in containers(&self.store()) {
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let _ = self.husk(&["rm", "-f", &id]);
        }
        // husk keeps the user's namespaces in a pause process, as rootless podman does;
        // this test's runtime dir goes away, so does its holder.
        let pid_file = self.runtime_dir().join("husk-engine/userns.pid");
        let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
        if let Some(pid) = pid
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pid > 1 {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The busybox test image (whiteouts, an opaque dir, a device node, a setuid file owned by
/// 1000) on a loopback registry of the test's own (a static one would never be stopped).
fn registry(tag: &str) -> Setup {
    setup(&format!("rootless-{tag}"))
}

#[test]
fn pull_and_run_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "run");
    let reg_setup = registry("1");
    let img = &reg_setup.image;
    r.ok(&["pull", img]);
    // The layer files: owners shifted into the subordinate range, readable by overlay in the
    // user namespace (user.overlay.* whiteouts), in the user's store.
    let layers = r.store().join("layers");
    let tool = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("diff/srv/tool"))
        .find(|p| p.exists())
        .expect("a layer has srv/tool");
    let meta = std::fs::symlink_metadata(&tool).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (SUB_START + 999, SUB_START + 999),
        "uid 1000 of the image is subordinate id 1000 (host {})",
        SUB_START + 999
    );
    let busybox = layers
        .read_dir()
        .unwrap()
        .flatten()
        .map(|e| e.path().join("diff/bin/busybox"))
        .find(|p| p.exists())
        .unwrap();
    assert_eq!(
        std::fs::metadata(&busybox).unwrap().uid(),
        u.uid,
        "root's files are the user's"
    );

    let out = r.ok(&[
        "run",
        "--rm",
        "-u",
        "0",
        img,
        "id -u; ls -ln /srv/tool; cat /srv/version; ls /opq; test -e /etc/remove-me || echo removed; \
         cat /proc/self/uid_map",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    assert!(
        lines[1].contains(" 1000 ") && lines[1].starts_with("-rwsr-xr-x"),
        "{out}"
    );
    assert_eq!(&lines[2..5], ["3", "c", "removed"], "{out}");
    let words: Vec<&str> = lines[5..]
        .iter()
        .flat_map(|l| l.split_whitespace())
        .collect();
    let (uid, sub) = (u.uid.to_string(), SUB_START.to_string());
    assert_eq!(words, ["0", &uid, "1", "1", &sub, "65536"], "{out}");
    // The image's own user (app, 1000) is the default.
    assert_eq!(r.ok(&["run", "--rm", img, "id -u"]).trim(), "1000");
    // A command's own -h and --help are its arguments, not a request for husk's help (which
    // runs outside the user namespace: busybox httpd's `-h DIR` failed so).
    let o = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/busybox",
        img,
        "echo",
        "-h",
        "--help",
    ]);
    assert_eq!(o, "-h --help\n");
    // Exit codes come through.
    let o = r.husk(&["run", "--rm", img, "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    // The container cannot write what the user cannot.
    let o = r.husk(&[
        "run",
        "--rm",
        "-v",
        "/etc:/hostetc",
        img,
        "touch /hostetc/husk-rootless-escape",
    ]);
    assert!(!o.status.success());
    assert!(!Path::new("/etc/husk-rootless-escape").exists());
    r.assert_nothing_left();
}

#[test]
fn detached_exec_logs_stop_rm_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "detached");
    let reg_setup = registry("2");
    let img = &reg_setup.image;
    let id = r.ok(&[
        "run",
        "-d",
        "--name",
        "rl",
        img,
        "echo started; exec sleep 300",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    // Still running after the command that started it returned (no daemon, no shell).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !r.ok(&["logs", "rl"]).contains("started") {
        assert!(std::time::Instant::now() < deadline, "no log line");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ps = r.ok(&["ps"]);
    assert!(ps.contains("rl") && ps.contains(&id[..12]), "{ps}");
    // exec joins the container from the user's own namespace.
    let inside = r.ok(&[
        "exec",
        "-u",
        "0",
        "rl",
        "sh",
        "-c",
        "echo in-$((6*7)); id -u; cat /proc/self/uid_map",
    ]);
    let words: Vec<&str> = inside.split_whitespace().collect();
    let (uid, sub) = (u.uid.to_string(), SUB_START.to_string());
    assert_eq!(
        words,
        ["in-42", "0", "0", &uid, "1", "1", &sub, "65536"],
        "{inside}"
    );
    // The namespace holder dies while the container runs: the next command takes the
    // namespace back from the container, so it can still be joined and stopped.
    let pid_file = r.runtime_dir().join("husk-engine/userns.pid");
    let holder = |f: &Path| -> i32 {
        let t = std::fs::read_to_string(f).unwrap();
        t.split_whitespace().next().unwrap().parse().unwrap()
    };
    let old = holder(&pid_file);
    unsafe { libc::kill(old, libc::SIGKILL) };
    while std::fs::read_to_string(format!("/proc/{old}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(r.ok(&["exec", "rl", "echo", "still-here"]), "still-here\n");
    assert_ne!(holder(&pid_file), old, "a new holder");
    r.ok(&["stop", "-t", "1", "rl"]);
    let ps = r.ok(&["ps", "-a"]);
    assert!(ps.contains("rl") && ps.contains("xited"), "{ps}");
    r.ok(&["rm", "rl"]);
    assert!(!r.ok(&["ps", "-a"]).contains("rl"));
    // rm -f of a running one: killed, its files (owned by subordinate ids) removed.
    r.ok(&["run", "-d", "--name", "rl2", img, "exec sleep 300"]);
    r.ok(&["rm", "-f", "rl2"]);
    assert!(!r.ok(&["ps", "-a"]).contains("rl2"));
    r.assert_nothing_left();
}

/// `commit` in the user's namespace: the upper dir's markers are overlay's `user.*` ones
/// (userxattr), owners are the namespace's; the new image runs with the changes.
#[test]
fn commit_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "commit");
    let reg_setup = registry("commit");
    let img = &reg_setup.image;
    let script = "busybox rm /srv/new; busybox rm -r /opq; busybox mkdir /opq; \
                  echo fresh > /opq/fresh; echo h > /srv/a; busybox ln /srv/a /srv/b; \
                  busybox chown 1000:1000 /srv/a";
    r.ok(&["run", "-u", "0", "--name", "c", img, script]);
    let diff = r.ok(&["diff", "c"]);
    for line in [
        "D /srv/new",
        "C /opq",
        "D /opq/c",
        "A /opq/fresh",
        "A /srv/b",
    ] {
        assert!(diff.lines().any(|l| l == line), "{line}: {diff}");
    }
    let id = r.ok(&["commit", "c", "localhost/mine:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    let check = "busybox ls /opq; [ -e /srv/new ] || echo new-gone; \
                 busybox stat -c '%h %u' /srv/b";
    let out = r.ok(&["run", "--rm", "-u", "0", "localhost/mine:1", check]);
    assert_eq!(out, "fresh\nnew-gone\n2 1000\n");
    r.ok(&["rm", "c"]);
    r.assert_nothing_left();
}

#[test]
fn interactive_terminal_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "tty");
    let reg_setup = registry("3");
    let img = &reg_setup.image;
    r.ok(&["pull", img]);
    let cmdline = format!(
        "setpriv --reuid {} --regid {} --init-groups -- env -i PATH={} HOME={} \
         XDG_RUNTIME_DIR={} XDG_DATA_HOME={} husk run --rm -it {img} 'tty; exit 3'",
        u.uid,
        u.gid,
        r.path,
        r.home.display(),
        r.runtime_dir().display(),
        r.home.join("data").display(),
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&o.stdout);
    assert!(all.contains("/dev/pts/0"), "{all}");
    assert!(
        all.contains("exit code 3") || o.status.code() == Some(3),
        "{all}"
    );
    r.assert_nothing_left();
}

#[test]
fn rootless_errors_say_what_to_fix() {
    let (u, nosub) = users();
    let reg_setup = registry("4");
    let img = &reg_setup.image;
    // No /etc/subuid line.
    let n = Rootless::new(nosub, "nosub");
    let e = n.err(&["pull", img]);
    assert!(
        e.contains("husk-nosubid has no subordinate uids")
            && e.contains("add a line to /etc/subuid such as \"husk-nosubid:100000:65536\""),
        "{e}"
    );
    // newuidmap missing from PATH.
    let mut r = Rootless::new(u, "errors");
    r.path = bin_dir().display().to_string();
    let e = r.err(&["pull", img]);
    assert!(e.contains("newuidmap not found on PATH"), "{e}");
    r.path = format!("{}:/usr/bin:/bin", bin_dir().display());
    // An image whose files belong to an id beyond the user's 65536.
    let mut w = husk_image::tar::Writer::new(Vec::new());
    let mut h = husk_image::tar::Header::new(husk_image::tar::Kind::File, "srv/far");
    h.mode = 0o644;
    h.uid = 70000;
    h.gid = 70000;
    h.size = 4;
    w.append(&h, &mut &b"far\n"[..]).unwrap();
    let far = build_image_with_config(
        &[
            (busybox_base_layer(), Comp::Gzip),
            (w.finish().unwrap(), Comp::Gzip),
        ],
        "amd64",
        &busybox_config(),
    );
    let reg = &reg_setup.reg;
    push_image(
        &reg.host(),
        &reg.client_options(),
        "far-owner",
        "latest",
        &far,
    );
    let e = r.err(&["pull", &format!("{}/far-owner:latest", reg.host())]);
    assert!(
        e.contains("srv/far") && e.contains("uid 70000") && e.contains("/etc/subuid"),
        "{e}"
    );
    // A limit the host cannot give a user (cgroup v1 cannot be delegated).
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let e = r.err(&["run", "--rm", "--memory", "64m", img, "true"]);
        assert!(
            e.contains("linux.resources.memory") && e.contains("cgroup v1"),
            "{e}"
        );
    }
    r.assert_nothing_left();
}

/// A one-shot HTTP server on the host's loopback; what it answers.
fn host_http_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        // Serve until a connection says "quit" (or the test binary ends).
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 1024];
            let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
            let quit = String::from_utf8_lossy(&buf[..n]).contains("quit");
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nhello-from-host",
            );
            if quit {
                break;
            }
        }
    });
    (port, t)
}

fn interfaces(proc_net_dev: &str) -> Vec<String> {
    let mut v: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn rootless_networks_none_host_and_slirp4netns() {
    let (u, _) = users();
    let r = Rootless::new(u, "net");
    let reg_setup = registry("5");
    let img = &reg_setup.image;
    r.ok(&["pull", img]);
    // none (the default): loopback only.
    let out = r.ok(&["run", "--rm", img, "cat /proc/net/dev"]);
    assert_eq!(interfaces(&out), ["lo"], "{out}");
    // host: the host's interfaces.
    let out = r.ok(&["run", "--rm", "--network", "host", img, "cat /proc/net/dev"]);
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(interfaces(&out), interfaces(&host), "{out}");
    // slirp4netns: tap0 up; the host's loopback only when allowed.
    let (port, server) = host_http_server();
    // (-T segfaults in Debian's busybox 1.35: a timeout applet bounds it instead)
    let fetch = format!(
        "/bin/busybox timeout 10 /bin/busybox wget -q -O- http://10.0.2.2:{port}/; echo \" rc=$?\""
    );
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns:allow_host_loopback=true",
        img,
        &format!("cat /proc/net/dev; {fetch}"),
    ]);
    assert!(interfaces(&out).contains(&"tap0".to_string()), "{out}");
    assert!(out.contains("hello-from-host rc=0"), "{out}");
    let out = r.ok(&["run", "--rm", "--network", "slirp4netns", img, &fetch]);
    assert!(
        !out.contains("hello-from-host") && !out.contains("rc=0"),
        "{out}"
    );
    // The classic failure: /dev/net/tun closed to users (rootless-user.sh opens it again).
    use std::os::unix::fs::PermissionsExt;
    let closed = TUN.write().unwrap_or_else(|e| e.into_inner());
    std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = r.err(&["run", "--rm", "--network", "slirp4netns", img, "true"]);
    std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(0o666)).unwrap();
    drop(closed);
    assert!(
        e.contains("/dev/net/tun") && e.contains("chmod 0666 /dev/net/tun"),
        "{e}"
    );

    // Detached: slirp4netns lives as long as the container, and goes with it.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "net-d",
        "--network",
        "slirp4netns:allow_host_loopback=true",
        img,
        "exec sleep 300",
    ]);
    let out = r.ok(&["exec", "net-d", "sh", "-c", &fetch]);
    assert!(out.contains("hello-from-host rc=0"), "{out}");
    r.ok(&["stop", "-t", "1", "net-d"]);
    r.ok(&["rm", "net-d"]);
    let _ = std::net::TcpStream::connect(("127.0.0.1", port))
        .and_then(|mut s| std::io::Write::write_all(&mut s, b"quit"));
    server.join().unwrap();
    // (A zombie does not count: PID 1 of some machines never reaps orphans.)
    let slirps = std::process::Command::new("pgrep")
        .args([
            "-u",
            &u.uid.to_string(),
            "--runstates",
            "RSDT",
            "slirp4netns",
        ])
        .output()
        .unwrap();
    assert!(
        slirps.stdout.is_empty(),
        "slirp4netns left running: {slirps:?}"
    );
    r.assert_nothing_left();
}

/// Where overlay cannot be mounted, the layers are copied, flattened, into the container's
/// rootfs (forced here with HUSK_ROOTFS=copy): the same tree, kept across stop/start.
#[test]
fn rootfs_copy_fallback_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "copy");
    let reg_setup = registry("6");
    let img = &reg_setup.image;
    let copy = ["HUSK_ROOTFS=copy"];
    let o = r.husk_env(
        &copy,
        &[
            "run",
            "--rm",
            "-u",
            "0",
            img,
            "cat /srv/version; ls /opq; test -e /etc/remove-me || echo removed; ls -ln /srv/tool",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["3", "c", "removed"], "{out}");
    assert!(lines[3].contains(" 1000 "), "{out}");
    // Detached: no overlay mount, and what the container wrote survives stop + start.
    let o = r.husk_env(
        &copy,
        &[
            "run",
            "-d",
            "--name",
            "cp1",
            "-u",
            "0",
            img,
            "echo kept >> /srv/marks; exec sleep 300",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let dir = r.store().join("containers").join(&id);
    assert!(dir.join("rootfs.copy").exists() && dir.join("rootfs/bin/busybox").exists());
    let holder = std::fs::read_to_string(r.runtime_dir().join("husk-engine/userns.pid")).unwrap();
    let holder = holder.split_whitespace().next().unwrap().to_string();
    let mounts = std::fs::read_to_string(format!("/proc/{holder}/mountinfo")).unwrap();
    assert!(
        !mounts.contains(&id),
        "no overlay for a copied rootfs: {mounts}"
    );
    r.ok(&["stop", "-t", "1", "cp1"]);
    r.ok(&["start", "cp1"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let marks = r.ok(&["exec", "cp1", "cat", "/srv/marks"]);
        if marks == "kept\nkept\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{marks:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    r.ok(&["rm", "-f", "cp1"]);
    r.assert_nothing_left();
}

/// Volumes and --mount as an ordinary user: a named volume in the user's store, filled
/// from the image with the owners the container sees (shifted into the subordinate ids on
/// the host), shared by the next container; tmpfs and bind --mounts; the image's VOLUME
/// as an anonymous volume that --rm takes along.
#[test]
fn volumes_and_mount_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "vol");
    let reg_setup = registry("7");
    let img = &reg_setup.image;
    let run = |args: &[&str], script: &str| {
        let mut a = vec!["run", "--rm", "--network", "none", "-u", "0"];
        a.extend_from_slice(args);
        a.extend([img.as_str(), script]);
        r.ok(&a)
    };
    let o = run(
        &["-v", "v:/srv"],
        "stat -c '%n %u:%g %a' /srv/tool /srv/version; echo made > /srv/made",
    );
    assert_eq!(o, "/srv/tool 1000:1000 4755\n/srv/version 0:0 600\n");
    let data = r.store().join("volumes/v/_data");
    let owner = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(
        owner(&data.join("tool")),
        (SUB_START + 999, SUB_START + 999)
    );
    assert_eq!(owner(&data.join("made")), (u.uid, u.gid));
    let host = r.home.join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::os::unix::fs::chown(&host, Some(u.uid), Some(u.gid)).unwrap();
    let bind = format!("type=bind,src={},dst=/h", host.display());
    let o = run(
        &[
            "--mount",
            "type=volume,src=v,dst=/v,readonly",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            "--mount",
            &bind,
        ],
        "cat /v/made; touch /v/x 2>/dev/null || echo ro; \
         grep ' /t ' /proc/self/mountinfo | sed 's/.* - //'; echo hi > /h/f; ls /data; echo end",
    );
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(&lines[..2], ["made", "ro"], "{o}");
    assert!(
        lines[2].starts_with("tmpfs ") && lines[2].contains("size=1024k"),
        "{o}"
    );
    assert_eq!(lines[3], "end", "{o}");
    assert_eq!(owner(&host.join("f")), (u.uid, u.gid));
    // The image's VOLUME /data came and went with the container (--rm).
    assert_eq!(r.ok(&["volume", "ls", "-q"]), "v\n");
    r.ok(&["volume", "rm", "v"]);
    assert!(!data.exists());
    r.assert_nothing_left();
}

#[test]
fn build_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "build");
    // The base image from a tar in the user's home; a context they own.
    let base = r.home.join("bb.tar");
    std::fs::write(&base, busybox_base_layer()).unwrap();
    let ctx = r.home.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("f"), "copied\n").unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/bb\nCOPY --chown=1000:1000 f /f\n\
         RUN echo ran > /r && chown 1000:1000 /r && rm /etc/remove-me\nCMD [\"cat\", \"/f\"]\n",
    )
    .unwrap();
    for p in [&base, &ctx, &ctx.join("f"), &ctx.join("Containerfile")] {
        std::os::unix::fs::chown(p, Some(r.user.uid), Some(r.user.gid)).unwrap();
    }
    r.ok(&["import", base.to_str().unwrap(), "localhost/bb"]);
    let o = r.ok(&["build", "-t", "localhost/rl", ctx.to_str().unwrap()]);
    let id = o.lines().last().unwrap().to_string();
    let o = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/rl",
        "sh",
        "-c",
        "cat /f /r; ls -ln /f /r | while read m l u g rest; do echo $u:$g; done; \
         test -e /etc/remove-me || echo removed",
    ]);
    assert_eq!(o, "copied\nran\n1000:1000\n1000:1000\nremoved\n");
    // Cached the second time, the same image.
    let o = r.ok(&["build", "-t", "localhost/rl", ctx.to_str().unwrap()]);
    assert_eq!(o.matches("Using cache").count(), 2, "{o}");
    assert_eq!(o.lines().last().unwrap(), id);
    r.assert_nothing_left();
}

#[test]
fn rootfs_tmpfs_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "rootfs-tmpfs");
    let reg_setup = registry("rootfs-tmpfs");
    let img = &reg_setup.image;
    // The tmpfs belongs to the user's mapped root: root in the container writes to it, up
    // to its size and no further.
    let script = "busybox df -k / | busybox tail -n 1; \
                  busybox dd if=/dev/zero of=/small bs=1M count=1 2>/dev/null && echo small-ok; \
                  busybox dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null || echo big-failed";
    let out = r.ok(&[
        "run",
        "--name",
        "t",
        "-u",
        "0",
        "--rootfs-tmpfs",
        "4m",
        img,
        script,
    ]);
    let size_k = out
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap();
    assert_eq!(size_k, "4096", "{out}");
    assert!(
        out.contains("small-ok\n") && out.contains("big-failed\n"),
        "{out}"
    );
    r.ok(&["rm", "t"]);
    r.assert_nothing_left();
}

/// A network namespace of the test's own (`ip netns add`), the only network pasta sees:
/// loopback, and a veth pair whose two ends both stay inside (10.99.0.1 with the default
/// route, 10.99.0.5 for servers), because pasta wants an interface with a route to copy.
/// Nothing in it leads to the machine's real interfaces. Deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new(tag: &str) -> TestNetns {
        let name = format!("husk-{tag}-{}", std::process::id());
        let ip = |args: &str| {
            let o = std::process::Command::new("ip")
                .args(args.split_whitespace())
                .output()
                .unwrap();
            assert!(o.status.success(), "ip {args}: {o:?}");
        };
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .output();
        ip(&format!("netns add {name}"));
        let ns = TestNetns { name };
        let n = &ns.name;
        ip(&format!("-n {n} link set lo up"));
        ip(&format!("-n {n} link add hv0 type veth peer name hv1"));
        ip(&format!("-n {n} addr add 10.99.0.1/24 dev hv0"));
        ip(&format!("-n {n} addr add 10.99.0.5/24 dev hv1"));
        ip(&format!("-n {n} link set hv0 up"));
        ip(&format!("-n {n} link set hv1 up"));
        ip(&format!("-n {n} route add default via 10.99.0.2 dev hv0"));
        ns
    }

    /// A root command in the namespace.
    fn cmd(&self, program: &str) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Taken for writing while a test closes /dev/net/tun to users; by tests that need it.
static TUN: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A child process killed and reaped on drop (also when an assertion fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This test's pasta processes (zombies aside): their namespace files are below its home
/// (other tests run pasta as the same user at the same time).
fn pastas(r: &Rootless) -> String {
    let o = std::process::Command::new("pgrep")
        // -f: Debian's pasta runs as pasta.avx2 where the CPU has it.
        .args([
            "-a",
            "-f",
            "-u",
            &r.user.uid.to_string(),
            "--runstates",
            "RSDT",
        ])
        .arg(format!("{}/.*pasta.netns", r.home.display()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The pid of the test's namespace holder (0 when there is none).
fn holder_pid(r: &Rootless) -> i32 {
    let pid =
        std::fs::read_to_string(r.runtime_dir().join("husk-engine/userns.pid")).unwrap_or_default();
    pid.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Network namespace files of this test mounted in the user's mount namespace (its
/// holder's view, where root's mounts propagate too): pasta's, the containers' and the
/// rootless network namespace, all below the test's home.
fn netns_mounts(r: &Rootless) -> Vec<String> {
    let home = r.home.display().to_string();
    std::fs::read_to_string(format!("/proc/{}/mountinfo", holder_pid(r)))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&home))
        .filter(|l| l.contains("pasta.netns") || l.contains("husk-engine-net/netns/"))
        .map(String::from)
        .collect()
}

/// Every live process this test's husk started (pasta, aardvark-dns, port forwarders,
/// monitors: they carry its XDG_RUNTIME_DIR), but the namespace holder, which lives on by
/// design. Zombies do not count (PID 1 of some machines never reaps orphans).
fn test_processes(r: &Rootless) -> Vec<String> {
    let mark = format!("XDG_RUNTIME_DIR={}", r.runtime_dir().display());
    let holder = holder_pid(r);
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().unwrap_or("").chars().next();
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let ours = env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes());
        if ours && pid != holder && state != Some('Z') {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            v.push(format!(
                "{pid} {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    v
}

/// `f` run in the network namespace `ns` (a thread of ours enters it: the namespace of a
/// thread is its own).
fn in_netns<T: Send>(ns: &TestNetns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// wget of `url` from the namespace `ns`, retried while the server starts.
fn fetch_in(ns: &TestNetns, url: &str) -> String {
    for _ in 0..25 {
        let o = ns
            .cmd("busybox")
            .args(["wget", "-q", "-O", "-", url])
            .output()
            .unwrap();
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).into_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("nothing answered {url}");
}

#[test]
fn rootless_pasta_outbound_and_published_ports() {
    // pasta opens /dev/net/tun, which the slirp4netns test closes for a moment.
    let _tun = TUN.read().unwrap_or_else(|e| e.into_inner());
    let (u, _) = users();
    let r = Rootless::new(u, "pasta");
    let reg_setup = registry("pasta");
    let img = &reg_setup.image;
    r.ok(&["pull", img]);
    let ns = TestNetns::new("pasta");
    // A server in the test's namespace, on its second address.
    let www = r.home.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("hi"), "from-the-test-netns\n").unwrap();
    let _server = Killed(
        ns.cmd("busybox")
            .args(["httpd", "-f", "-p", "10.99.0.5:8181", "-h"])
            .arg(&www)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Outbound through pasta: the container's interface and route are copies of the
    // namespace's, its nameserver pasta's forwarder.
    let fetch =
        "for i in 1 2 3 4 5; do wget -q -O - http://10.99.0.5:8181/hi && break; sleep 0.2; done";
    let out = r.ok_in(
        &ns,
        &[
            "run",
            "--rm",
            "--network",
            "pasta",
            img,
            &format!("ip -4 route; grep nameserver /etc/resolv.conf; {fetch}"),
        ],
    );
    assert!(out.contains("default via 10.99.0.2"), "{out}");
    assert!(out.contains("nameserver 169.254.1.1"), "{out}");
    assert!(out.contains("from-the-test-netns"), "{out}");

    // Detached: pasta lives as long as the container, and goes with it.
    r.ok_in(
        &ns,
        &[
            "run",
            "-d",
            "--name",
            "pd",
            "--network",
            "pasta",
            img,
            "exec sleep 300",
        ],
    );
    assert!(
        pastas(&r).contains("pasta.netns"),
        "no pasta: {}",
        pastas(&r)
    );
    let out = r.ok_in(&ns, &["exec", "pd", "sh", "-c", fetch]);
    assert!(out.contains("from-the-test-netns"), "{out}");
    // Its monitor killed: `rm -f` ends pasta and removes the namespace file all the same.
    let meta = std::fs::read(containers(&r.store())[0].join("container.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
    let monitor = meta["monitor_pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    r.ok(&["rm", "-f", "pd"]);
    assert_eq!(
        pastas(&r),
        "",
        "pasta outlived rm -f after its monitor's death"
    );

    // -p through pasta (the rootless default once ports are published), tcp and udp: the
    // servers in the container answer on the test namespace's loopback; `port`, `ps` and
    // `inspect` show what pasta forwards; a port taken is one error.
    let echo = udp_echo_binary(&r.home);
    let vol = format!("{}:/udpecho:ro", echo.display());
    let udp = free_port();
    r.ok_in(
        &ns,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-v",
            &vol,
            "-p",
            "127.0.0.1:18080:8080",
            "-p",
            &format!("127.0.0.1:{udp}:7777/udp"),
            img,
            // (the image's user, 1000, may not bind a port below 1024 here)
            "httpd -p 8080 -h /srv; exec /udpecho 7777",
        ],
    );
    assert_eq!(fetch_in(&ns, "http://127.0.0.1:18080/new"), "new\n");
    assert_eq!(in_netns(&ns, || udp_echo(udp)), "ping over udp");
    let port = r.ok(&["port", "web"]);
    assert!(port.contains("8080/tcp -> 127.0.0.1:18080\n"), "{port}");
    assert!(
        port.contains(&format!("7777/udp -> 127.0.0.1:{udp}\n")),
        "{port}"
    );
    let ps = r.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(
        ps.contains(&format!(
            "web 127.0.0.1:18080->8080/tcp, 127.0.0.1:{udp}->7777/udp"
        )),
        "{ps}"
    );
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", "web"])).unwrap();
    assert_eq!(
        v[0]["NetworkSettings"]["Ports"]["7777/udp"],
        serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": udp.to_string()}])
    );
    let o = r.husk_in(
        &ns,
        &[
            "run",
            "--rm",
            "--network",
            "pasta",
            "-p",
            "127.0.0.1:18080:8080",
            img,
            "true",
        ],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{e}");
    assert!(e.contains("18080"), "{e}");
    r.ok(&["rm", "-f", "web"]);

    // pasta refuses an option: one error line, nothing left behind.
    let o = r.husk_in(
        &ns,
        &[
            "run",
            "--rm",
            "--network",
            "pasta:--no-such-option",
            img,
            "true",
        ],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{e}");
    assert!(e.contains("pasta did not configure the network"), "{e}");

    assert_eq!(pastas(&r), "", "pasta left running");
    assert_eq!(
        netns_mounts(&r),
        Vec::<String>::new(),
        "namespace files left mounted"
    );
    r.assert_nothing_left();
}

/// `--userns=keep-id[:uid=N,gid=N]` (podman's): the user's own uid and gid are theirs inside
/// too, so what the container writes into a bind-mounted host dir is the user's; the
/// image's files keep their owners inside; the process runs as the user unless -u says
/// otherwise; passwd and group gain the user in the container, never in the image.
#[test]
fn keep_id_as_an_ordinary_user() {
    let (u, _) = users();
    let r = Rootless::new(u, "keepid");
    let reg_setup = registry("keep-id");
    let img = &reg_setup.image;
    let host = r.home.join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::os::unix::fs::chown(&host, Some(u.uid), Some(u.gid)).unwrap();
    let bind = format!("{}:/d", host.display());
    let owner = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    let (uid, gid) = (u.uid.to_string(), u.gid.to_string());
    let out = r.ok(&[
        "run",
        "--rm",
        "--userns=keep-id",
        "-v",
        &bind,
        img,
        "id -u; id -g; echo hi > /d/f; echo $HOME; grep :$(id -u): /etc/passwd; \
         grep :$(id -g): /etc/group; stat -c '%u:%g' /bin/busybox /srv/tool; cat /proc/self/uid_map",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    // The user's home is not in the container: HOME is the working dir (podman's rule).
    assert_eq!(&lines[..3], [uid.as_str(), gid.as_str(), "/srv"], "{out}");
    assert_eq!(
        lines[3],
        format!("{}:*:{uid}:{gid}::/srv:/bin/sh", u.name),
        "{out}"
    );
    assert_eq!(lines[4], format!("{}:x:{gid}:", u.name), "{out}");
    assert_eq!(&lines[5..7], ["0:0", "1000:1000"], "image owners: {out}");
    let map: Vec<Vec<&str>> = lines[7..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (next, rest) = ((u.uid + 1).to_string(), (65536 - u.uid).to_string());
    assert_eq!(
        map,
        [
            vec!["0", "1", uid.as_str()],
            vec![uid.as_str(), "0", "1"],
            vec![next.as_str(), next.as_str(), rest.as_str()]
        ],
        "{out}"
    );
    assert_eq!(
        owner(&host.join("f")),
        (u.uid, u.gid),
        "the user's on the host"
    );
    // The image's layers are untouched: the entry lives in the container only.
    let layers = r.store().join("layers");
    for e in std::fs::read_dir(&layers).unwrap().flatten() {
        let p = e.path().join("diff/etc/passwd");
        if p.exists() {
            assert!(!std::fs::read_to_string(&p).unwrap().contains(&u.name));
        }
    }
    // -u still wins: root inside (a subordinate id outside), owning the image's /etc.
    let out = r.ok(&[
        "run",
        "--rm",
        "--userns=keep-id",
        "-u",
        "0",
        img,
        "id -u; touch /etc/x && echo wrote",
    ]);
    assert_eq!(out, "0\nwrote\n");
    // uid=/gid=: the user is 2000:3000 inside, still the user on the host; detached, exec
    // runs as it too. With the user's home mounted, that is HOME.
    let home = format!("/home/{}", u.name);
    let home_bind = format!("{}:{home}", host.display());
    r.ok(&[
        "run",
        "-d",
        "--name",
        "k2",
        "--userns=keep-id:uid=2000,gid=3000",
        "-v",
        &bind,
        "-v",
        &home_bind,
        img,
        "echo x > /d/g; exec sleep 300",
    ]);
    let out = r.ok(&[
        "exec",
        "k2",
        "sh",
        "-c",
        "id -u; id -g; grep :2000: /etc/passwd; echo $HOME",
    ]);
    assert_eq!(
        out,
        format!(
            "2000\n3000\n{}:*:2000:3000::{home}:/bin/sh\n{home}\n",
            u.name
        )
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !host.join("g").exists() {
        assert!(std::time::Instant::now() < deadline, "no /d/g");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(owner(&host.join("g")), (u.uid, u.gid));
    let mode = r.ok(&["inspect", "-f", "{{.HostConfig.UsernsMode}}", "k2"]);
    assert_eq!(mode, "keep-id:uid=2000,gid=3000\n");
    r.ok(&["rm", "-f", "k2"]);
    // create, then start: the copy made at create is the one that runs.
    r.ok(&["create", "--name", "k3", "--userns=keep-id", img, "id -u"]);
    assert_eq!(r.ok(&["start", "-a", "k3"]), format!("{uid}\n"));
    r.ok(&["rm", "k3"]);
    // Bad values: one error line, exit 125, nothing made.
    let o = r.husk(&["run", "--rm", "--userns=keep-id:uid=x", img, "true"]);
    assert_eq!(o.status.code(), Some(125));
    let e = r.err(&["run", "--rm", "--userns=keep-id:uid=x", img, "true"]);
    assert!(
        e.ends_with(": --userns \"keep-id:uid=x\": uid=x: not a uid or gid number"),
        "{e}"
    );
    // No overlay writable layer to limit.
    let e = r.err(&[
        "run",
        "--rm",
        "--userns=keep-id",
        "--rootfs-tmpfs",
        "8m",
        img,
        "true",
    ]);
    assert!(e.contains("no writable layer for --rootfs-tmpfs"), "{e}");
    r.assert_nothing_left();
}

/// What this test's rootless networking holds in its run dir: the containers' netns files,
/// address and port leases, the rootless namespace's users and namespace file.
fn net_state(r: &Rootless) -> Vec<String> {
    let run = r.runtime_dir().join("husk-engine-net");
    let mut v = Vec::new();
    for sub in ["netns", "leases", "ports", "rootless-netns/users"] {
        for e in walk(&run.join(sub)) {
            v.push(e);
        }
    }
    if run.join("rootless-netns/pasta.netns").exists() {
        v.push("rootless-netns/pasta.netns".into());
    }
    v
}

/// Files below `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            v.extend(walk(&e.path()));
        } else {
            v.push(e.path().display().to_string());
        }
    }
    v
}

/// Rootless user-defined networks: in the user's rootless network namespace (netavark's
/// bridge and aardvark-dns there, pasta to the outside), two containers reach each other by
/// name and alias, not on the default network (but by address); `network connect` with an
/// alias and `disconnect`; out through pasta, and not from an `--internal` network; `-p` tcp
/// and udp through husk's relay; `--network container:NAME`; a pod of two on the user
/// network (localhost, and its name for the others); bad input (unknown network,
/// port in use, overlapping subnet, `-p` on `none`) is one error with nothing left; `stop`+`rm`, `rm -f` and `rm` after a kill -9
/// of the monitor each leave nothing: the last container out ends the rootless namespace,
/// its pasta and aardvark-dns. All of it inside the test's own namespace ([`TestNetns`]);
/// the containers' only nameservers are aardvark-dns and an address of that namespace.
#[test]
fn rootless_user_networks_names_ports_and_teardown() {
    let _tun = TUN.read().unwrap_or_else(|e| e.into_inner());
    let (u, _) = users();
    let r = Rootless::new(u, "rnet");
    let reg_setup = registry("rnet");
    let img = &reg_setup.image;
    r.ok(&["pull", img]);
    let ns = TestNetns::new("rnet");
    let before = (test_processes(&r), net_state(&r), netns_mounts(&r));
    assert_eq!(before.0, Vec::<String>::new(), "{before:?}");

    r.ok(&["network", "create", "app"]);
    let ls = r.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(ls.contains("app"), "{ls}");
    assert!(r.store().join("networks/app.json").exists());
    let echo = udp_echo_binary(&r.home);
    let vol = format!("{}:/udpecho:ro", echo.display());
    let (tcp, udp) = (free_port(), free_port());
    r.ok_in(
        &ns,
        &[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "app",
            "--network-alias",
            "www",
            "-v",
            &vol,
            "-p",
            &format!("127.0.0.1:{tcp}:8080"),
            "-p",
            &format!("{udp}:7/udp"),
            img,
            "httpd -p 8080 -h /srv; exec /udpecho 7",
        ],
    );
    // The rootless namespace, its pasta and aardvark-dns exist while a container uses it.
    assert!(pastas(&r).contains("rootless-netns"), "{}", pastas(&r));
    let procs = test_processes(&r).join("\n");
    assert!(procs.contains("aardvark-dns"), "{procs}");
    // By name and by alias, through aardvark-dns.
    let out = r.ok_in(
        &ns,
        &[
            "run",
            "--rm",
            "--network",
            "app",
            img,
            "grep nameserver /etc/resolv.conf; wget -q -O - http://srv:8080/new; \
             wget -q -O - http://www:8080/new",
        ],
    );
    assert_eq!(out.matches("new\n").count(), 2, "{out}");
    assert!(
        !out.contains("10.99."),
        "nameserver not aardvark-dns: {out}"
    );
    // Published ports, tcp and udp, from the test namespace.
    assert_eq!(
        fetch_in(&ns, &format!("http://127.0.0.1:{tcp}/new")),
        "new\n"
    );
    assert_eq!(in_netns(&ns, || udp_echo(udp)), "ping over udp");
    let port = r.ok(&["port", "srv"]);
    assert!(
        port.contains(&format!("8080/tcp -> 127.0.0.1:{tcp}\n"))
            && port.contains(&format!("7/udp -> 0.0.0.0:{udp}\n")),
        "{port}"
    );

    // Not by name on the default network (no DNS there, as docker's), though by address;
    // its nameserver an address of the test's namespace where nothing answers.
    r.ok_in(
        &ns,
        &[
            "run",
            "-d",
            "--name",
            "b1",
            "--network",
            "bridge",
            img,
            "httpd -p 8080 -h /srv; exec sleep 300",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", "b1"])).unwrap();
    let b1_ip = v[0]["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // A fetch in a container (tries: a server may still be starting; a name that does not
    // resolve fails once). (-T segfaults in Debian's busybox 1.35: `timeout` bounds it.)
    let wget = |url: &str, tries: u32| {
        format!(
            "for i in $(seq {tries}); do timeout 3 wget -q -O - {url} && exit; \
             sleep 0.2; done; echo failed"
        )
    };
    let probe = |host: &str, tries: u32| wget(&format!("http://{host}:8080/new"), tries);
    let on_bridge = |host: &str, tries: u32| {
        r.ok_in(
            &ns,
            &[
                "run",
                "--rm",
                "--network",
                "bridge",
                "--dns",
                "10.99.0.5",
                img,
                &probe(host, tries),
            ],
        )
    };
    assert_eq!(on_bridge(&b1_ip, 5), "new\n");
    assert_eq!(on_bridge("b1", 1), "failed\n");

    // network connect: b1 joins app with an alias there, and leaves it again.
    r.ok(&["network", "connect", "--alias", "bee", "app", "b1"]);
    let out = r.ok_in(
        &ns,
        &["run", "--rm", "--network", "app", img, &probe("bee", 5)],
    );
    assert_eq!(out, "new\n");
    r.ok(&["network", "disconnect", "app", "b1"]);
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["network", "inspect", "app"])).unwrap();
    // (by name: the keys are ids, whose hex may hold "b1")
    let mut on_app: Vec<&str> = v[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|c| c["Name"].as_str())
        .collect();
    on_app.sort();
    assert_eq!(on_app, ["srv"]);

    // Out through the rootless namespace's pasta to a server of the test's namespace; no
    // way out from an --internal network.
    let www = r.home.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("hi"), "from-the-test-netns\n").unwrap();
    let _server = Killed(
        ns.cmd("busybox")
            .args(["httpd", "-f", "-p", "10.99.0.5:8181", "-h"])
            .arg(&www)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    r.ok(&["network", "create", "--internal", "int"]);
    let fetch = |tries: u32| wget("http://10.99.0.5:8181/hi", tries);
    let out = r.ok_in(&ns, &["run", "--rm", "--network", "app", img, &fetch(5)]);
    assert_eq!(out, "from-the-test-netns\n");
    let out = r.ok_in(&ns, &["run", "--rm", "--network", "int", img, &fetch(1)]);
    assert!(
        out.ends_with("failed\n") && !out.contains("from-the"),
        "{out}"
    );

    // Bad input: one error, exit 125, nothing made.
    let state = net_state(&r);
    for (args, says) in [
        (
            vec!["run", "--rm", "--network", "nosuch", img, "true"],
            "no such network: nosuch".to_string(),
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "app",
                "-p",
                &format!("127.0.0.1:{tcp}:80"),
                img,
                "true",
            ],
            format!("{tcp}"),
        ),
    ] {
        let o = r.husk_in(&ns, &args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(&says), "{e}");
        assert_eq!(net_state(&r), state, "{args:?} left something");
    }
    // An overlapping subnet; -p where nothing can publish.
    r.ok(&["network", "create", "--subnet", "10.123.0.0/24", "ovl"]);
    let e = r.err(&["network", "create", "--subnet", "10.123.0.128/25", "ovl2"]);
    assert!(e.contains("overlaps network ovl"), "{e}");
    let o = r.husk_in(
        &ns,
        &["run", "--rm", "--network", "none", "-p", "80", img, "true"],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{e}");
    assert!(e.contains("publishes no ports"), "{e}");
    assert_eq!(net_state(&r), state, "-p on none left something");
    // --network container:NAME: srv's namespace, where its server answers on localhost.
    let out = r.ok_in(
        &ns,
        &[
            "run",
            "--rm",
            "--network",
            "container:srv",
            img,
            &wget("http://127.0.0.1:8080/new", 5),
        ],
    );
    assert_eq!(out, "new\n");
    // A pod of two on the user network: its members share localhost, and the others on
    // the network reach it by its name.
    r.ok(&["pod", "create", "--name", "rp", "--network", "app"]);
    r.ok_in(
        &ns,
        &["run", "-d", "--pod", "rp", img, "httpd -f -p 8080 -h /srv"],
    );
    let local = r.ok_in(
        &ns,
        &[
            "run",
            "--rm",
            "--pod",
            "rp",
            img,
            &wget("http://127.0.0.1:8080/new", 5),
        ],
    );
    assert_eq!(local, "new\n");
    let by_name = r.ok_in(
        &ns,
        &["run", "--rm", "--network", "app", img, &probe("rp", 5)],
    );
    assert_eq!(by_name, "new\n");
    r.ok(&["pod", "rm", "-f", "rp"]);
    // A start that fails (no such command) undoes its network too.
    let o = r.husk_in(&ns, &["run", "--rm", "--network", "app", img, "/no/such"]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    assert_eq!(net_state(&r), state, "a failed start left something");

    // Every way out: stop then rm, rm -f, rm after its monitor was killed; each leaves
    // nothing of its own (leases, netns file, its use of the rootless namespace) while
    // the others still run.
    let id_of = |name: &str| {
        let v: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", name])).unwrap();
        v[0]["Id"].as_str().unwrap().to_string()
    };
    let (b1_id, srv_id) = (id_of("b1"), id_of("srv"));
    // (lease and users/ files hold the owner's container dir; netns files are named by id)
    let mine = |id: &str| -> Vec<String> {
        net_state(&r)
            .into_iter()
            .filter(|f| f.contains(id) || std::fs::read_to_string(f).is_ok_and(|o| o.contains(id)))
            .collect()
    };
    assert!(!mine(&b1_id).is_empty(), "{:?}", net_state(&r));
    r.ok(&["stop", "-t", "1", "b1"]);
    assert_eq!(mine(&b1_id), Vec::<String>::new(), "after stop");
    r.ok(&["rm", "b1"]);
    let meta = std::fs::read(
        containers(&r.store())
            .into_iter()
            .find(|d| {
                std::fs::read_to_string(d.join("container.json"))
                    .is_ok_and(|m| m.contains("\"name\": \"srv\""))
            })
            .unwrap()
            .join("container.json"),
    )
    .unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
    unsafe { libc::kill(meta["monitor_pid"].as_i64().unwrap() as i32, libc::SIGKILL) };
    r.ok(&["rm", "-f", "srv"]);
    assert_eq!(
        mine(&srv_id),
        Vec::<String>::new(),
        "after a dead monitor and rm -f"
    );
    r.ok_in(
        &ns,
        &[
            "run",
            "-d",
            "--name",
            "c3",
            "--network",
            "app",
            img,
            "exec sleep 300",
        ],
    );
    r.ok(&["rm", "-f", "c3"]);
    r.ok(&["network", "rm", "app", "int", "ovl"]);

    assert_eq!(test_processes(&r), before.0, "processes left");
    assert_eq!(net_state(&r), before.1, "network state left");
    assert_eq!(netns_mounts(&r), before.2, "namespace files left mounted");
    assert_eq!(pastas(&r), "", "pasta left running");
    r.assert_nothing_left();
}
