//! The D-Bus calls to systemd's manager (org.freedesktop.systemd1.Manager), over husk's own
//! small synchronous D-Bus client (written from the D-Bus specification):
//! - [`wire`]: the marshalling format, [`message`]: a message's header and body,
//! - [`address`]: where a bus listens, [`connection`]: connect, authenticate, call, wait.
//!
//! Each operation is one short conversation on a connection of its own, closed before
//! returning. The client runs on the caller's thread with no event loop (the runtime stays
//! single-threaded across its raw clones), and it is small: a general D-Bus library on an
//! async runtime made the static husk-runtime 1 MB larger and every `run` 750 KiB heavier
//! in RSS although only `--systemd-cgroup` uses it (docs/architecture.md).

pub(super) mod address;
mod connection;
mod error;
mod message;
mod wire;

use std::time::Duration;

pub use error::DbusError;

use super::properties::{Property, Value as PropValue};
use super::Bus;
use crate::CgroupError;
use connection::{one, Connection};
use wire::{Type, Value};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
/// How long one method call may take (D-Bus's customary default).
const CALL_TIMEOUT: Duration = Duration::from_secs(25);
/// How long a start or stop job may take; generous, as the tests run under emulation.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

fn err(op: impl Into<String>) -> impl FnOnce(DbusError) -> CgroupError {
    move |source| CgroupError::Systemd {
        op: op.into(),
        source,
    }
}

/// Connect to the manager's bus. The user's bus and identity come from [`super::user`].
fn connect(bus: Bus) -> Result<Connection, CgroupError> {
    match bus {
        Bus::System => {
            // SAFETY: getuid cannot fail.
            let uid = unsafe { libc::getuid() };
            let op = "connecting to the system bus (is systemd running?)";
            address::parse(&address::system_bus())
                .and_then(|t| Connection::open(t, uid, CALL_TIMEOUT))
                .map_err(err(op))
        }
        Bus::User => {
            let socket = super::user::bus_socket()?;
            let op = "connecting to the user's bus (is the user's systemd running?)";
            let targets = vec![address::Target::Path(socket)];
            Connection::open(targets, super::user::bus_uid(), CALL_TIMEOUT).map_err(err(op))
        }
    }
}

fn call(c: &mut Connection, member: &str, args: Vec<Value>) -> Result<Vec<Value>, DbusError> {
    c.call(DEST, PATH, MANAGER, member, args)
}

/// A reply that is one object path (a job's or a unit's).
fn path_reply(member: &str, body: Vec<Value>) -> Result<String, DbusError> {
    one(member, body, |v| match v {
        Value::Path(p) => Some(p.clone()),
        _ => None,
    })
}

/// Unit properties as systemd's `a(sv)`.
fn properties(props: &[Property]) -> Value {
    let items = props
        .iter()
        .map(|(name, v)| {
            let v = match v {
                PropValue::Bool(b) => Value::Bool(*b),
                PropValue::Str(s) => Value::Str(s.clone()),
                PropValue::U64(n) => Value::U64(*n),
                PropValue::U32s(v) => {
                    Value::Array(Type::U32, v.iter().copied().map(Value::U32).collect())
                }
                PropValue::Bytes(v) => {
                    Value::Array(Type::Byte, v.iter().copied().map(Value::Byte).collect())
                }
            };
            Value::Struct(vec![Value::str(name), Value::variant(v)])
        })
        .collect();
    Value::Array(property_type(), items)
}

fn property_type() -> Type {
    Type::Struct(vec![Type::Str, Type::Variant])
}

/// Ask for the manager's JobRemoved signals before the job is queued, so that its end
/// cannot be missed (systemd sends them only while someone is subscribed). Returns the
/// manager's unique name: any peer may send us a signal directly, past the match rule, so
/// only JobRemoved from that sender counts.
fn subscribe_jobs(c: &mut Connection) -> Result<String, DbusError> {
    let owner = c.call_bus("GetNameOwner", vec![Value::str(DEST)])?;
    let owner = one("GetNameOwner", owner, |v| v.as_str().map(str::to_string))?;
    call(c, "Subscribe", vec![])?;
    c.add_match(&format!(
        "type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
    ))?;
    Ok(owner)
}

/// Wait until `job` is removed (JobRemoved: `uoss` id, job, unit, result); its result must
/// be "done".
fn wait_job(c: &mut Connection, manager: &str, job: &str) -> Result<(), DbusError> {
    let (unit, result) = c.wait_signal(JOB_TIMEOUT, &format!("systemd's job {job}"), |m| {
        let from_manager = m.sender.as_deref() == Some(manager)
            && m.path.as_deref() == Some(PATH)
            && m.interface.as_deref() == Some(MANAGER)
            && m.member.as_deref() == Some("JobRemoved");
        match &m.body[..] {
            [Value::U32(_), Value::Path(p), Value::Str(unit), Value::Str(result)]
                if from_manager && p == job =>
            {
                Some((unit.clone(), result.clone()))
            }
            _ => None,
        }
    })?;
    match result.as_str() {
        "done" => Ok(()),
        _ => Err(DbusError::Job { unit, result }),
    }
}

/// Whether `unit` is loaded (GetUnit knows it).
pub fn unit_loaded(bus: Bus, unit: &str) -> Result<bool, CgroupError> {
    let op = format!("looking up unit {unit}");
    let mut c = connect(bus)?;
    match call(&mut c, "GetUnit", vec![Value::str(unit)]) {
        Ok(body) => path_reply("GetUnit", body).map(|_| true).map_err(err(op)),
        Err(e) if e.name() == Some(NO_SUCH_UNIT) => Ok(false),
        Err(e) => Err(err(op)(e)),
    }
}

/// StartTransientUnit(unit, "fail", props, no auxiliary units) and wait for its job.
pub fn start_transient_unit(bus: Bus, unit: &str, props: &[Property]) -> Result<(), CgroupError> {
    let op = format!("starting transient unit {unit}");
    let mut c = connect(bus)?;
    (|| {
        let manager = subscribe_jobs(&mut c)?;
        let aux = Type::Struct(vec![Type::Str, Type::Array(Box::new(property_type()))]);
        let args = vec![
            Value::str(unit),
            Value::str("fail"),
            properties(props),
            Value::Array(aux, vec![]),
        ];
        let job = path_reply(
            "StartTransientUnit",
            call(&mut c, "StartTransientUnit", args)?,
        )?;
        wait_job(&mut c, &manager, &job)
    })()
    .map_err(err(op))
}

/// SetUnitProperties(unit, runtime=true, props): the change lasts until the unit goes.
pub fn set_unit_properties(bus: Bus, unit: &str, props: &[Property]) -> Result<(), CgroupError> {
    if props.is_empty() {
        return Ok(());
    }
    let op = format!("setting properties of unit {unit}");
    let mut c = connect(bus)?;
    let args = vec![Value::str(unit), Value::Bool(true), properties(props)];
    call(&mut c, "SetUnitProperties", args)
        .map(drop)
        .map_err(err(op))
}

/// StopUnit(unit, "replace"), wait for its job, then ResetFailedUnit so that no failed unit
/// lingers. A unit systemd no longer knows (it stopped by itself when its last process
/// exited) is not an error.
pub fn stop_unit(bus: Bus, unit: &str) -> Result<(), CgroupError> {
    let op = format!("stopping unit {unit}");
    let mut c = connect(bus)?;
    (|| {
        let manager = subscribe_jobs(&mut c)?;
        match call(
            &mut c,
            "StopUnit",
            vec![Value::str(unit), Value::str("replace")],
        ) {
            Ok(body) => wait_job(&mut c, &manager, &path_reply("StopUnit", body)?)?,
            Err(e) if e.name() == Some(NO_SUCH_UNIT) => return Ok(()),
            Err(e) => return Err(e),
        }
        // Only a failed unit stays loaded after stopping; otherwise this says NoSuchUnit.
        let _ = call(&mut c, "ResetFailedUnit", vec![Value::str(unit)]);
        Ok(())
    })()
    .map_err(err(op))
}

/// Entry points for the fuzz target in fuzz/ (not API).
pub mod fuzzing {
    use super::message::Message;

    /// Parse `data` as one D-Bus message (it must never panic); an accepted message is
    /// written back (little-endian, with the header fields husk keeps), and those bytes
    /// parse and write back to themselves. (Bytes, not values: a NaN is not equal to itself.)
    pub fn message(data: &[u8]) {
        let Ok(m) = Message::parse(data) else {
            return;
        };
        let bytes = m.encode().expect("an accepted message can be written back");
        let again = Message::parse(&bytes).expect("its own bytes parse");
        assert_eq!(again.encode().expect("written back again"), bytes);
        assert_eq!(
            (again.kind, again.serial, again.body.len()),
            (m.kind, m.serial, m.body.len())
        );
        if let Some(prefix) = data.get(..super::message::PREFIX_LEN) {
            let prefix = prefix.try_into().expect("PREFIX_LEN bytes");
            assert_eq!(Message::len_from_prefix(prefix).ok(), Some(data.len()));
        }
    }
}

#[cfg(test)]
mod tests;
