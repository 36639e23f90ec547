//! Which user namespace this process runs in, as /proc/self/uid_map tells: what the runtime
//! library (rootless rules) and the image store (where a user's store lives, whether layer
//! owners can be kept) both need to know.

/// One line of a uid_map: ids `inside..inside+count` are `outside..` in the parent namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Parse uid_map (or gid_map) text; malformed lines are skipped.
pub fn parse_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u32>().ok());
            let (inside, outside, count) = (f.next()??, f.next()??, f.next()??);
            Some(IdRange {
                inside,
                outside,
                count,
            })
        })
        .collect()
}

/// This process's uid_map (empty where /proc cannot be read).
pub fn own_uid_map() -> Vec<IdRange> {
    parse_map(&std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default())
}

/// Whether a map sends id 0 to the parent's 0 (the host's namespace does).
pub fn maps_root_to_root(map: &[IdRange]) -> bool {
    map.iter()
        .any(|r| r.inside == 0 && r.outside == 0 && r.count > 0)
}

/// Root of the host: uid 0 in a namespace whose 0 is the host's 0. Root of a rootless user
/// namespace (an ordinary user's, or rootless podman's) is not.
pub fn is_host_root() -> bool {
    let euid = unsafe { libc::geteuid() };
    euid == 0 && maps_root_to_root(&own_uid_map())
}

/// Whether this process runs in a user namespace other than the host's, whose map is the
/// identity over all 2^32-1 ids; there mknod and some mounts are refused even to root.
pub fn in_nested_userns() -> bool {
    own_uid_map()
        != [IdRange {
            inside: 0,
            outside: 0,
            count: u32::MAX,
        }]
}

/// Our effective uid as the parent namespace sees it (the host, for a rootless user's
/// namespace): where our uid falls in uid_map.
pub fn host_euid() -> u32 {
    let euid = unsafe { libc::geteuid() };
    own_uid_map()
        .iter()
        .find(|r| euid >= r.inside && euid - r.inside < r.count)
        .map_or(euid, |r| r.outside + (euid - r.inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_root_only_when_mapped_to_host_root() {
        let host = parse_map("         0          0 4294967295\n");
        assert!(maps_root_to_root(&host));
        let user =
            parse_map("         0       1002          1\n         1    1000000      65536\n");
        assert!(!maps_root_to_root(&user));
        assert_eq!(
            user[1],
            IdRange {
                inside: 1,
                outside: 1_000_000,
                count: 65536
            }
        );
        assert!(!maps_root_to_root(&parse_map("junk\n")));
    }
}
