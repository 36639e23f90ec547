//! The D-Bus calls to systemd's manager (org.freedesktop.systemd1.Manager), over zbus.
//!
//! Each call is one short conversation on its own single-threaded tokio runtime, dropped
//! before returning: the runtime process stays single-threaded between calls (it clones
//! children with raw clone(2), which a process with other threads must not do), and a
//! command that never asks for the systemd driver never builds any of it.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::{self, OwnedObjectPath};
use zbus::{Connection, MatchRule, MessageStream};

use super::properties::{Property, Value};
use super::Bus;
use crate::CgroupError;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
/// How long a start or stop job may take; generous, as the tests run under emulation.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

fn err(op: impl Into<String>, e: impl std::fmt::Display) -> CgroupError {
    CgroupError::Systemd {
        op: op.into(),
        reason: e.to_string(),
    }
}

/// Run one conversation to completion on a runtime of its own (no threads).
fn block_on<T>(
    op: &str,
    f: impl Future<Output = Result<T, CgroupError>>,
) -> Result<T, CgroupError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| err(format!("{op}: starting the D-Bus client"), e))?;
    rt.block_on(f)
}

async fn connect(bus: Bus) -> Result<Connection, CgroupError> {
    let builder = match bus {
        Bus::System => zbus::connection::Builder::system()
            .map_err(|e| err("connecting to the system bus (is systemd running?)", e))?,
        Bus::User => {
            // The user's socket and the host uid, also from inside the rootless engine's
            // user namespace, where our own euid (0) is not who the bus daemon sees.
            let path = super::user::bus_socket()?;
            let op = format!("connecting to the user's bus {}", path.display());
            zbus::connection::Builder::address(format!("unix:path={}", path.display()).as_str())
                .map_err(|e| err(&op, e))?
                .user_id(super::user::bus_uid())
        }
    };
    let what = match bus {
        Bus::System => "the system bus (is systemd running?)".to_string(),
        Bus::User => "the user's bus (is the user's systemd running?)".to_string(),
    };
    builder
        .build()
        .await
        .map_err(|e| err(format!("connecting to {what}"), e))
}

fn to_dbus(props: &[Property]) -> Vec<(&'static str, zvariant::Value<'static>)> {
    props
        .iter()
        .map(|(name, v)| {
            let v = match v {
                Value::Bool(b) => zvariant::Value::Bool(*b),
                Value::Str(s) => zvariant::Value::from(s.clone()),
                Value::U64(n) => zvariant::Value::U64(*n),
                Value::U32s(v) => zvariant::Value::from(v.clone()),
                Value::Bytes(v) => zvariant::Value::from(v.clone()),
            };
            (*name, v)
        })
        .collect()
}

fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _) if name.as_str() == NO_SUCH_UNIT)
}

/// A stream of the manager's JobRemoved signals, opened before the job is queued so that
/// its end cannot be missed. systemd sends them only while someone is subscribed.
async fn job_signals(c: &Connection, op: &str) -> Result<MessageStream, CgroupError> {
    c.call_method(Some(DEST), PATH, Some(MANAGER), "Subscribe", &())
        .await
        .map_err(|e| err(op, e))?;
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .path(PATH)
        .and_then(|b| b.interface(MANAGER))
        .and_then(|b| b.member("JobRemoved"))
        .map_err(|e| err(op, e))?
        .build();
    MessageStream::for_match_rule(rule, c, Some(64))
        .await
        .map_err(|e| err(op, e))
}

/// Wait until `job` is removed; its result must be "done".
async fn wait_job(
    signals: &mut MessageStream,
    job: &OwnedObjectPath,
    op: &str,
) -> Result<(), CgroupError> {
    let wait = async {
        while let Some(m) = signals.next().await {
            let m = m.map_err(|e| err(op, e))?;
            let Ok((_id, path, unit, result)) = m
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
            else {
                continue;
            };
            if path == *job {
                return match result.as_str() {
                    "done" => Ok(()),
                    r => Err(err(
                        op,
                        format!("systemd's job for {unit} ended with {r:?}"),
                    )),
                };
            }
        }
        Err(err(op, "the bus connection closed before the job finished"))
    };
    tokio::time::timeout(JOB_TIMEOUT, wait)
        .await
        .map_err(|_| err(op, format!("the job did not finish in {JOB_TIMEOUT:?}")))?
}

/// Whether `unit` is loaded (GetUnit knows it).
pub fn unit_loaded(bus: Bus, unit: &str) -> Result<bool, CgroupError> {
    let op = format!("looking up unit {unit}");
    block_on(&op, async {
        let c = connect(bus).await?;
        match c
            .call_method(Some(DEST), PATH, Some(MANAGER), "GetUnit", &(unit,))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_no_such_unit(&e) => Ok(false),
            Err(e) => Err(err(&op, e)),
        }
    })
}

/// StartTransientUnit(unit, "fail", props) and wait for its job.
pub fn start_transient_unit(bus: Bus, unit: &str, props: &[Property]) -> Result<(), CgroupError> {
    let op = format!("starting transient unit {unit}");
    block_on(&op, async {
        let c = connect(bus).await?;
        let mut signals = job_signals(&c, &op).await?;
        let aux: Vec<(&str, Vec<(&str, zvariant::Value)>)> = Vec::new();
        let reply = c
            .call_method(
                Some(DEST),
                PATH,
                Some(MANAGER),
                "StartTransientUnit",
                &(unit, "fail", to_dbus(props), aux),
            )
            .await
            .map_err(|e| err(&op, e))?;
        let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| err(&op, e))?;
        wait_job(&mut signals, &job, &op).await
    })
}

/// SetUnitProperties(unit, runtime=true, props): the change lasts until the unit goes.
pub fn set_unit_properties(bus: Bus, unit: &str, props: &[Property]) -> Result<(), CgroupError> {
    if props.is_empty() {
        return Ok(());
    }
    let op = format!("setting properties of unit {unit}");
    block_on(&op, async {
        let c = connect(bus).await?;
        c.call_method(
            Some(DEST),
            PATH,
            Some(MANAGER),
            "SetUnitProperties",
            &(unit, true, to_dbus(props)),
        )
        .await
        .map_err(|e| err(&op, e))?;
        Ok(())
    })
}

/// StopUnit(unit, "replace"), wait for its job, then ResetFailedUnit so that no failed unit
/// lingers. A unit systemd no longer knows (it stopped by itself when its last process
/// exited) is not an error.
pub fn stop_unit(bus: Bus, unit: &str) -> Result<(), CgroupError> {
    let op = format!("stopping unit {unit}");
    block_on(&op, async {
        let c = connect(bus).await?;
        let mut signals = job_signals(&c, &op).await?;
        let r = c
            .call_method(
                Some(DEST),
                PATH,
                Some(MANAGER),
                "StopUnit",
                &(unit, "replace"),
            )
            .await;
        match r {
            Ok(reply) => {
                let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| err(&op, e))?;
                wait_job(&mut signals, &job, &op).await?;
            }
            Err(e) if is_no_such_unit(&e) => return Ok(()),
            Err(e) => return Err(err(&op, e)),
        }
        // Only a failed unit stays loaded after stopping; otherwise this says NoSuchUnit.
        let _ = c
            .call_method(Some(DEST), PATH, Some(MANAGER), "ResetFailedUnit", &(unit,))
            .await;
        Ok(())
    })
}
