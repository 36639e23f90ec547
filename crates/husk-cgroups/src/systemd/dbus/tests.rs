//! The client against a real message bus: a private dbus-daemon per test (Debian's `dbus`
//! package, installed by scripts/deps.sh), on a path or abstract socket of its own.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::address;
use super::connection::Connection;
use super::error::DbusError;
use super::message::{Kind, Message};
use super::wire::{Type, Value};

const T: Duration = Duration::from_secs(10);

/// A dbus-daemon with the session configuration, stopped on drop.
struct Daemon {
    child: Child,
    addr: String,
    _dir: Dir,
}

/// A temporary directory, removed on drop.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> Dir {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("husk-dbus-test-{}-{n}", std::process::id()));
    std::fs::create_dir(&d).unwrap();
    Dir(d)
}

impl Daemon {
    /// `listen`: the address to listen on, with `DIR` standing for a fresh directory.
    fn start(listen: &str) -> Daemon {
        let dir = temp_dir();
        let listen = listen.replace("DIR", dir.0.to_str().unwrap());
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address={listen}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running dbus-daemon (Debian's dbus package; scripts/deps.sh installs it)");
        // It prints its address once it listens.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon printed {line:?}");
        Daemon {
            child,
            addr: line.trim().to_string(),
            _dir: dir,
        }
    }

    fn connect(&self) -> Connection {
        open(&self.addr, T).unwrap()
    }
}

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

fn open(addr: &str, timeout: Duration) -> Result<Connection, DbusError> {
    Connection::open(address::parse(addr)?, uid(), timeout)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn hello_getid_listnames_on_a_real_bus() {
    let d = Daemon::start("unix:path=DIR/bus");
    let mut c = d.connect();
    assert!(c.unique_name().starts_with(':'), "{}", c.unique_name());
    // GetId: the bus's ID, 32 hex digits.
    let id = c.call_bus("GetId", vec![]).unwrap();
    let [Value::Str(id)] = &id[..] else {
        panic!("GetId returned {id:?}")
    };
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let names = c.call_bus("ListNames", vec![]).unwrap();
    let [Value::Array(Type::Str, names)] = &names[..] else {
        panic!("ListNames returned {names:?}")
    };
    for want in ["org.freedesktop.DBus", c.unique_name()] {
        assert!(names.contains(&Value::str(want)), "{want} not in {names:?}");
    }
}

#[test]
fn an_abstract_socket_and_error_replies() {
    let d = Daemon::start("unix:abstract=DIR/bus");
    assert!(d.addr.starts_with("unix:abstract="), "{}", d.addr);
    let mut c = d.connect();
    // The error's D-Bus name and message come back typed.
    match c.call_bus("GetNameOwner", vec![Value::str("org.example.Nobody")]) {
        Err(DbusError::Method { name, message }) => {
            assert_eq!(name, "org.freedesktop.DBus.Error.NameHasNoOwner");
            assert!(message.contains("org.example.Nobody"), "{message}");
        }
        r => panic!("GetNameOwner of nobody: {r:?}"),
    }
    let e = c.call_bus("NoSuchMethod", vec![]).unwrap_err();
    assert_eq!(e.name(), Some("org.freedesktop.DBus.Error.UnknownMethod"));
    // The connection is still usable after an error.
    let owner = c
        .call_bus("GetNameOwner", vec![Value::str("org.freedesktop.DBus")])
        .unwrap();
    assert_eq!(owner, [Value::str("org.freedesktop.DBus")]);
}

#[test]
fn signals_carry_systemds_argument_types_through_the_bus() {
    let d = Daemon::start("unix:path=DIR/bus");
    let mut listener = d.connect();
    listener
        .add_match("type='signal',interface='org.example.Test',member='Props'")
        .unwrap();
    // The bus announces every new connection: the listener sees the sender's arrival.
    listener
        .add_match("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'")
        .unwrap();
    let mut sender = d.connect();
    let me = sender.unique_name().to_string();
    listener
        .wait_signal(T, "NameOwnerChanged", |m| match &m.body[..] {
            [Value::Str(name), Value::Str(old), Value::Str(new)]
                if *name == me && old.is_empty() && *new == me =>
            {
                Some(())
            }
            _ => None,
        })
        .unwrap();

    // StartTransientUnit's `ssa(sv)a(sa(sv))` with every property type the driver sends,
    // checked by dbus-daemon (it drops a client that sends a malformed message) and read
    // back by the listener.
    let sv = Type::Struct(vec![Type::Str, Type::Variant]);
    let prop = |n: &str, v: Value| Value::Struct(vec![Value::str(n), Value::variant(v)]);
    let body = vec![
        Value::str("husk-c1.scope"),
        Value::str("fail"),
        Value::Array(
            sv.clone(),
            vec![
                prop("Delegate", Value::Bool(true)),
                prop("PIDs", Value::Array(Type::U32, vec![Value::U32(42)])),
                prop("MemoryMax", Value::U64(u64::MAX)),
                prop(
                    "AllowedCPUs",
                    Value::Array(Type::Byte, vec![Value::Byte(3)]),
                ),
                prop("Description", Value::str("d")),
            ],
        ),
        Value::Array(
            Type::Struct(vec![Type::Str, Type::Array(Box::new(sv))]),
            vec![],
        ),
        Value::Path("/org/freedesktop/systemd1/job/7".into()),
        Value::I16(-3),
        Value::U16(3),
        Value::I32(-70000),
        Value::I64(-1 << 40),
        Value::Double(0.25),
        Value::Sig("a{sv}".into()),
    ];
    let mut signal = Message::call(
        "",
        "/org/example",
        "org.example.Test",
        "Props",
        body.clone(),
    );
    signal.kind = Kind::Signal;
    signal.destination = None;
    sender.send(signal).unwrap();
    let got = listener
        .wait_signal(T, "the test signal", |m| {
            (m.member.as_deref() == Some("Props")).then(|| (m.sender.clone(), m.body.clone()))
        })
        .unwrap();
    assert_eq!(got, (Some(me), body));
}

#[test]
fn a_silent_bus_is_a_timeout_not_a_hang() {
    // A socket that accepts and never answers the authentication.
    let dir = temp_dir();
    let path = dir.0.join("bus");
    let _l = UnixListener::bind(&path).unwrap();
    let start = Instant::now();
    let r = open(
        &format!("unix:path={}", path.display()),
        Duration::from_millis(300),
    );
    assert!(
        matches!(r, Err(DbusError::Timeout { .. })),
        "{:?}",
        r.map(|c| c.unique_name().to_string())
    );
    assert!(start.elapsed() < Duration::from_secs(5));

    // Nothing listening at all: a connect error naming the socket.
    let r = open(&format!("unix:path={}/none", dir.0.display()), T);
    match r {
        Err(e @ DbusError::Connect { .. }) => assert!(e.to_string().contains("/none"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

#[test]
fn waiting_for_a_signal_that_never_comes_times_out() {
    let d = Daemon::start("unix:path=DIR/bus");
    let mut c = d.connect();
    let start = Instant::now();
    // (The bus's NameAcquired for our own name is queued or arrives: it is not picked.)
    let r = c.wait_signal(Duration::from_millis(200), "nothing", |m| {
        (m.member.as_deref() == Some("Never")).then_some(())
    });
    assert!(matches!(r, Err(DbusError::Timeout { .. })), "{r:?}");
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[test]
fn the_bus_refuses_an_identity_that_is_not_ours() {
    let d = Daemon::start("unix:path=DIR/bus");
    let other = uid() + 12345;
    match Connection::open(address::parse(&d.addr).unwrap(), other, T) {
        Err(DbusError::Auth { uid, reply }) => {
            assert_eq!(uid, other);
            assert!(reply.starts_with("REJECTED"), "{reply}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("authenticated as uid {other}"),
    }
}
