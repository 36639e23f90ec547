//! The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, as docker makes them:
//! written per container into its directory and bind-mounted over the image's, so that
//! the image is never changed and each container can have its own. The texts are made by
//! pure functions (unit-tested); [`write`] only reads the host's files and writes ours.

use crate::network::Network;
use crate::os::{IoContext, IoError};
use std::net::IpAddr;
use std::path::Path;

/// The three files, by their name in the container's directory and in the container.
pub const FILES: [(&str, &str); 3] = [
    ("hostname", "/etc/hostname"),
    ("hosts", "/etc/hosts"),
    ("resolv.conf", "/etc/resolv.conf"),
];

/// docker's fallback nameservers when the host has none the container can reach.
const DEFAULT_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// slirp4netns's DNS forwarder inside the container's network (see [`crate::network`]).
const SLIRP_DNS: &str = "10.0.2.3";

/// What the files say.
pub struct EtcInput<'a> {
    pub hostname: &'a str,
    /// The container's name (an alias of the hostname in /etc/hosts).
    pub name: &'a str,
    pub network: Network,
    pub extra_hosts: &'a [(String, IpAddr)],
    pub dns: &'a [IpAddr],
    pub dns_search: Option<&'a [String]>,
    /// On a bridge network: the container's own address (its first network's).
    pub address: Option<IpAddr>,
    /// aardvark-dns's addresses and search domain, on networks with DNS: containers
    /// resolve each other's names through it, and it forwards the rest.
    pub network_dns: &'a [IpAddr],
    pub network_search: &'a [String],
    /// The settings' nameservers, instead of the host's.
    pub default_dns: &'a [IpAddr],
}

/// `/etc/hosts`: docker's loopback lines, --add-host's, then the container's own name.
/// With the host's network it is the host's file plus --add-host's lines (as docker).
pub fn hosts(i: &EtcInput, host_hosts: &str) -> String {
    let mut s = String::new();
    if i.network == Network::Host {
        s.push_str(host_hosts);
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
    } else {
        s.push_str(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n",
        );
    }
    for (h, ip) in i.extra_hosts {
        s.push_str(&format!("{ip}\t{h}\n"));
    }
    if i.network != Network::Host {
        // The container's own address: slirp4netns's fixed one, else (loopback only)
        // Debian's 127.0.1.1 convention for the machine's own name.
        let own = match (&i.network, i.address) {
            (_, Some(a)) => a.to_string(),
            (Network::Slirp { .. }, _) => "10.0.2.100".to_string(),
            _ => "127.0.1.1".to_string(),
        };
        let names = if i.name == i.hostname {
            i.hostname.to_string()
        } else {
            format!("{} {}", i.hostname, i.name)
        };
        s.push_str(&format!("{own}\t{names}\n"));
    }
    s
}

fn is_loopback(ns: &str) -> bool {
    ns.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn nameservers(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|r| r.split_whitespace().next())
        .collect()
}

/// Which host file docker reads: /etc/resolv.conf, unless every nameserver there is a
/// loopback stub (systemd-resolved's 127.0.0.53) and the stub's upstream list exists.
pub fn host_resolv_conf(etc: &str, resolved_upstream: Option<&str>) -> String {
    let ns = nameservers(etc);
    match resolved_upstream {
        Some(up) if !ns.is_empty() && ns.iter().all(|n| is_loopback(n)) => up.to_string(),
        _ => etc.to_string(),
    }
}

/// `/etc/resolv.conf` from the host's: --dns replaces the nameservers, --dns-search the
/// search domains; the options stay. In a network namespace of its own a loopback
/// nameserver is the container's own loopback, where nothing answers: those are dropped
/// and docker's defaults used when none remain. slirp4netns's forwarder stands in for
/// the host's nameservers. The host's network keeps the host's file as it is.
pub fn resolv_conf(i: &EtcInput, host: &str) -> String {
    if i.network == Network::Host && i.dns.is_empty() && i.dns_search.is_none() {
        return host.to_string();
    }
    let mut servers: Vec<String> = if !i.network_dns.is_empty() {
        // aardvark first: the names of the network's containers; --dns's after it.
        i.network_dns
            .iter()
            .chain(i.dns)
            .map(|d| d.to_string())
            .collect()
    } else if !i.dns.is_empty() {
        i.dns.iter().map(|d| d.to_string()).collect()
    } else if matches!(i.network, Network::Slirp { .. }) {
        vec![SLIRP_DNS.to_string()]
    } else if matches!(i.network, Network::Pasta(_)) {
        vec![crate::network::pasta::DNS.to_string()]
    } else if !i.default_dns.is_empty() {
        i.default_dns.iter().map(|d| d.to_string()).collect()
    } else {
        let own_netns = i.network != Network::Host;
        nameservers(host)
            .into_iter()
            .filter(|n| !(own_netns && is_loopback(n)))
            .map(String::from)
            .collect()
    };
    if servers.is_empty() {
        servers = DEFAULT_DNS.iter().map(|s| s.to_string()).collect();
    }
    let mut out = String::new();
    let mut search: Vec<String> = i.network_search.to_vec();
    for l in host.lines() {
        let t = l.trim();
        if t.starts_with("options") {
            out.push_str(t);
            out.push('\n');
        } else if i.dns_search.is_none() {
            if let Some(s) = t.strip_prefix("search") {
                search.extend(s.split_whitespace().map(String::from));
            }
        }
    }
    search.extend(i.dns_search.unwrap_or_default().iter().cloned());
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

/// Read the host's files, write the container's three into `dir`.
pub fn write(dir: &Path, i: &EtcInput) -> Result<(), IoError> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let upstream = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").ok();
    let host_resolv = host_resolv_conf(&read("/etc/resolv.conf"), upstream.as_deref());
    for (file, text) in [
        ("hostname", format!("{}\n", i.hostname)),
        ("hosts", hosts(i, &read("/etc/hosts"))),
        ("resolv.conf", resolv_conf(i, &host_resolv)),
    ] {
        let p = dir.join(file);
        std::fs::write(&p, text).ctx("writing", &p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(network: Network) -> EtcInput<'static> {
        EtcInput {
            hostname: "web",
            name: "web-1",
            network,
            extra_hosts: &[],
            dns: &[],
            dns_search: None,
            address: None,
            network_dns: &[],
            network_search: &[],
            default_dns: &[],
        }
    }

    #[test]
    fn hosts_has_localhost_extra_hosts_and_own_name() {
        let extra = [("db".to_string(), "192.0.2.7".parse().unwrap())];
        let i = EtcInput {
            extra_hosts: &extra,
            ..input(Network::None)
        };
        let h = hosts(&i, "1.2.3.4 hostonly\n");
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost"), "{h}");
        assert!(h.ends_with("192.0.2.7\tdb\n127.0.1.1\tweb web-1\n"), "{h}");
        assert!(!h.contains("hostonly"));
        let h = hosts(&i, "1.2.3.4 hostonly");
        assert!(!h.contains("hostonly"));
        let host = hosts(
            &EtcInput {
                network: Network::Host,
                ..i
            },
            "1.2.3.4 hostonly",
        );
        assert_eq!(host, "1.2.3.4 hostonly\n192.0.2.7\tdb\n");
        let slirp = hosts(
            &input(Network::Slirp {
                host_loopback: false,
            }),
            "",
        );
        assert!(slirp.ends_with("10.0.2.100\tweb web-1\n"), "{slirp}");
    }

    #[test]
    fn resolv_conf_drops_loopback_and_falls_back_like_docker() {
        let stub = "# managed\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        let r = resolv_conf(&input(Network::None), stub);
        assert_eq!(
            r,
            "options edns0 trust-ad\nsearch lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let mixed = "nameserver ::1\nnameserver 192.0.2.1\n";
        assert_eq!(
            resolv_conf(&input(Network::None), mixed),
            "nameserver 192.0.2.1\n"
        );
        // the host's network reaches the host's stub: unchanged
        assert_eq!(resolv_conf(&input(Network::Host), stub), stub);
        let slirp = Network::Slirp {
            host_loopback: true,
        };
        assert!(resolv_conf(&input(slirp), stub).ends_with("nameserver 10.0.2.3\n"));
        // --dns and --dns-search replace the host's
        let dns = ["192.0.2.53".parse().unwrap()];
        let search = ["a.test".to_string(), "b.test".to_string()];
        let i = EtcInput {
            dns: &dns,
            dns_search: Some(&search),
            ..input(Network::Host)
        };
        assert_eq!(
            resolv_conf(&i, stub),
            "options edns0 trust-ad\nsearch a.test b.test\nnameserver 192.0.2.53\n"
        );
        let none: [String; 0] = [];
        let i = EtcInput {
            dns_search: Some(&none),
            ..input(Network::None)
        };
        assert!(!resolv_conf(&i, stub).contains("search"));
    }

    #[test]
    fn a_resolved_stub_reads_its_upstream_list() {
        let stub = "nameserver 127.0.0.53\n";
        let up = "nameserver 192.0.2.9\n";
        assert_eq!(host_resolv_conf(stub, Some(up)), up);
        assert_eq!(host_resolv_conf(stub, None), stub);
        let real = "nameserver 192.0.2.1\n";
        assert_eq!(host_resolv_conf(real, Some(up)), real);
    }

    #[test]
    fn bridge_networks_give_the_address_and_aardvark() {
        let gw = ["10.89.0.1".parse().unwrap()];
        let dns = ["192.0.2.53".parse().unwrap()];
        let search = ["dns.podman".to_string()];
        let i = EtcInput {
            address: Some("10.89.0.5".parse().unwrap()),
            network_dns: &gw,
            network_search: &search,
            dns: &dns,
            ..input(Network::Bridge)
        };
        assert!(hosts(&i, "").ends_with("10.89.0.5\tweb web-1\n"));
        let r = resolv_conf(&i, "nameserver 192.0.2.1\nsearch lan\n");
        assert_eq!(
            r,
            "search dns.podman lan\nnameserver 10.89.0.1\nnameserver 192.0.2.53\n"
        );
        // the settings' nameservers stand in for the host's
        let default = ["192.0.2.99".parse().unwrap()];
        let i = EtcInput {
            default_dns: &default,
            ..input(Network::Bridge)
        };
        assert_eq!(
            resolv_conf(&i, "nameserver 192.0.2.1\n"),
            "nameserver 192.0.2.99\n"
        );
    }
}
