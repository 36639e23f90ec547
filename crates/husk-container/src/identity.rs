//! Who the container's process runs as: groups, gid, uid, umask, rlimits, oom_score_adj.

use crate::process::SetupError;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType, User};
use std::io;

/// setgroups + setresgid + setresuid. With `keep_caps`, the permitted set survives the uid
/// change so the spec's capability sets can be applied afterwards.
pub fn switch_user(user: &User, set_groups: bool) -> Result<(), SetupError> {
    let uid = user.uid();
    let gid = user.gid();
    let fail = |what: String| move |e: io::Error| SetupError::new(what, e);
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    if !set_groups && !groups.is_empty() {
        return Err(SetupError::msg(format!(
            "process.user.additionalGids {groups:?} needs setgroups, which this user \
             namespace denies (map the gids with newgidmap, from /etc/subgid)"
        )));
    }
    if set_groups {
        crate::sys::check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
            .map_err(fail(format!("setting additional gids {groups:?}")))?;
    }
    crate::sys::check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) })
        .map_err(fail("setting PR_SET_KEEPCAPS".into()))?;
    crate::sys::check(unsafe { libc::setresgid(gid, gid, gid) })
        .map_err(fail(format!("setting gid {gid}")))?;
    crate::sys::check(unsafe { libc::setresuid(uid, uid, uid) })
        .map_err(fail(format!("setting uid {uid}")))?;
    crate::sys::check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) })
        .map_err(fail("clearing PR_SET_KEEPCAPS".into()))?;
    Ok(())
}

pub fn resource_of(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(limits: &[PosixRlimit]) -> Result<(), SetupError> {
    for l in limits {
        let r = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        crate::sys::check(unsafe { libc::setrlimit(resource_of(l.typ()), &r) }).map_err(|e| {
            SetupError::new(
                format!(
                    "setting rlimit {} to soft={} hard={}{}",
                    rlimit_name(l.typ()),
                    l.soft(),
                    l.hard(),
                    if e.raw_os_error() == Some(libc::EPERM) {
                        " (raising a hard limit needs CAP_SYS_RESOURCE on the host; without \
                         it limits can only be lowered)"
                    } else {
                        ""
                    }
                ),
                e,
            )
        })?;
    }
    Ok(())
}

/// The spec's name of a limit ("RLIMIT_NOFILE"), for messages.
fn rlimit_name(t: PosixRlimitType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{t:?}"))
}
