//! Parsing of `mounts[].options` into mount(2) flags, propagation, recursive attributes and
//! filesystem data, as runc and the runtime spec define the option names.

/// mount_setattr(2) attribute bits (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME: u64 = 0x70;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x20_0000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2) (MS_RDONLY, MS_NOSUID, ...), without propagation.
    pub flags: libc::c_ulong,
    /// Propagation changes to apply after mounting, in order (MS_PRIVATE|MS_REC, ...).
    pub propagation: Vec<libc::c_ulong>,
    /// Recursive attributes (`rro`, `rnosuid`, ...) for mount_setattr(AT_RECURSIVE).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub data: String,
    pub bind: bool,
    /// `tmpcopyup`: copy the image's content of the target into the new tmpfs.
    pub tmpcopyup: bool,
}

impl MountOptions {
    pub fn parse(options: &[String]) -> MountOptions {
        let mut o = MountOptions::default();
        let mut data: Vec<&str> = Vec::new();
        for opt in options {
            let opt = opt.as_str();
            // Plain flags: (name, set?, flag)
            let flag = match opt {
                "ro" => Some((true, libc::MS_RDONLY)),
                "rw" => Some((false, libc::MS_RDONLY)),
                "nosuid" => Some((true, libc::MS_NOSUID)),
                "suid" => Some((false, libc::MS_NOSUID)),
                "nodev" => Some((true, libc::MS_NODEV)),
                "dev" => Some((false, libc::MS_NODEV)),
                "noexec" => Some((true, libc::MS_NOEXEC)),
                "exec" => Some((false, libc::MS_NOEXEC)),
                "sync" => Some((true, libc::MS_SYNCHRONOUS)),
                "async" => Some((false, libc::MS_SYNCHRONOUS)),
                "dirsync" => Some((true, libc::MS_DIRSYNC)),
                "remount" => Some((true, libc::MS_REMOUNT)),
                "mand" => Some((true, libc::MS_MANDLOCK)),
                "nomand" => Some((false, libc::MS_MANDLOCK)),
                "atime" => Some((false, libc::MS_NOATIME)),
                "noatime" => Some((true, libc::MS_NOATIME)),
                "diratime" => Some((false, libc::MS_NODIRATIME)),
                "nodiratime" => Some((true, libc::MS_NODIRATIME)),
                "relatime" => Some((true, libc::MS_RELATIME)),
                "norelatime" => Some((false, libc::MS_RELATIME)),
                "strictatime" => Some((true, libc::MS_STRICTATIME)),
                "nostrictatime" => Some((false, libc::MS_STRICTATIME)),
                "lazytime" => Some((true, libc::MS_LAZYTIME)),
                "nolazytime" => Some((false, libc::MS_LAZYTIME)),
                "silent" => Some((true, libc::MS_SILENT)),
                "loud" => Some((false, libc::MS_SILENT)),
                _ => None,
            };
            if let Some((set, f)) = flag {
                if set {
                    o.flags |= f;
                } else {
                    o.flags &= !f;
                }
                continue;
            }
            let prop = match opt {
                "private" => Some(libc::MS_PRIVATE),
                "rprivate" => Some(libc::MS_PRIVATE | libc::MS_REC),
                "shared" => Some(libc::MS_SHARED),
                "rshared" => Some(libc::MS_SHARED | libc::MS_REC),
                "slave" => Some(libc::MS_SLAVE),
                "rslave" => Some(libc::MS_SLAVE | libc::MS_REC),
                "unbindable" => Some(libc::MS_UNBINDABLE),
                "runbindable" => Some(libc::MS_UNBINDABLE | libc::MS_REC),
                _ => None,
            };
            if let Some(p) = prop {
                o.propagation.push(p);
                continue;
            }
            let rec = match opt {
                "rro" => Some((true, MOUNT_ATTR_RDONLY)),
                "rrw" => Some((false, MOUNT_ATTR_RDONLY)),
                "rnosuid" => Some((true, MOUNT_ATTR_NOSUID)),
                "rsuid" => Some((false, MOUNT_ATTR_NOSUID)),
                "rnodev" => Some((true, MOUNT_ATTR_NODEV)),
                "rdev" => Some((false, MOUNT_ATTR_NODEV)),
                "rnoexec" => Some((true, MOUNT_ATTR_NOEXEC)),
                "rexec" => Some((false, MOUNT_ATTR_NOEXEC)),
                "rnodiratime" => Some((true, MOUNT_ATTR_NODIRATIME)),
                "rdiratime" => Some((false, MOUNT_ATTR_NODIRATIME)),
                "rnosymfollow" => Some((true, MOUNT_ATTR_NOSYMFOLLOW)),
                "rsymfollow" => Some((false, MOUNT_ATTR_NOSYMFOLLOW)),
                _ => None,
            };
            if let Some((set, a)) = rec {
                if set {
                    o.rec_set |= a;
                    o.rec_clear &= !a;
                } else {
                    o.rec_clear |= a;
                    o.rec_set &= !a;
                }
                continue;
            }
            match opt {
                "ratime" | "rnoatime" | "rstrictatime" | "rrelatime" => {
                    o.rec_clear |= MOUNT_ATTR_ATIME;
                    o.rec_set &= !MOUNT_ATTR_ATIME;
                    o.rec_set |= match opt {
                        "rnoatime" => MOUNT_ATTR_NOATIME,
                        "rstrictatime" => MOUNT_ATTR_STRICTATIME,
                        _ => 0,
                    };
                }
                "bind" => o.bind = true,
                "rbind" => {
                    o.bind = true;
                    o.flags |= libc::MS_REC;
                }
                "tmpcopyup" => o.tmpcopyup = true,
                // Handled by the caller or meaningless for mount(2).
                "defaults" | "idmap" | "ridmap" => {}
                other => data.push(other),
            }
        }
        o.data = data.join(",");
        o
    }

    /// Flags that need a second, remounting call after a bind mount.
    pub fn bind_remount_flags(&self) -> libc::c_ulong {
        self.flags
            & (libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC
                | libc::MS_NOATIME
                | libc::MS_NODIRATIME
                | libc::MS_RELATIME
                | libc::MS_STRICTATIME)
    }
}

/// Parse `rootfsPropagation` ("rslave", "private", ...).
pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    MountOptions::parse(&[name.to_string()])
        .propagation
        .first()
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        MountOptions::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn rbind_ro_and_recursive_attrs() {
        let o = p(&["rbind", "ro", "rnosuid", "tmpcopyup"]);
        assert!(o.bind && o.tmpcopyup);
        assert_eq!(o.flags, libc::MS_REC | libc::MS_RDONLY);
        assert_eq!(o.bind_remount_flags(), libc::MS_RDONLY);
        assert_eq!(o.rec_set, MOUNT_ATTR_NOSUID);
    }

    #[test]
    fn later_options_override_earlier() {
        assert_eq!(p(&["ro", "rw"]).flags, 0);
        assert_eq!(propagation_flag("private"), Some(libc::MS_PRIVATE));
        assert_eq!(propagation_flag("bogus"), None);
    }
}
