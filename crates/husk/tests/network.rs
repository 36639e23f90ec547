//! Bridge networks as root: published ports (tcp with busybox httpd fetched by busybox
//! wget, udp with a small echo server), names between containers on user-defined networks
//! (and not on the default one), --internal, bad input, every way a container ends, and 50
//! containers at once on one network.
//!
//! Where the traffic goes: this binary runs in a network namespace of its own (see
//! tests/common: `enter_test_netns`), so the bridges, veths, netavark's iptables rules,
//! aardvark-dns and the published ports all live there, it has no route off the machine,
//! and the containers' only nameserver is an address of that namespace's loopback
//! (TEST_DNS). wget and the udp probe run from the test namespace too. The tests here run
//! one at a time ([`SERIAL`]): each compares what exists in the namespace before and after.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn pulled(tag: &str) -> Setup {
    let s = setup(tag);
    husk_ok(&s.root, &["pull", &s.image]);
    s
}

/// The engine's run dir for networks (network/setup.rs: run_dir).
const RUN_NET: &str = "/run/husk-engine-net";

fn lines(cmd: &str, args: &[&str]) -> Vec<String> {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// Live (not zombie) aardvark-dns processes in this namespace.
fn aardvarks() -> usize {
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let p = e.path();
            let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
            stat.contains("(aardvark-dns)")
                && !stat.contains(") Z ")
                && std::fs::read_link(p.join("ns/net")).ok().as_ref() == Some(&ours)
        })
        .count()
}

/// Lease files of the run dir held by containers of `root`, and netns files of `ids`.
fn held(root: &Path, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["leases", "ports"] {
        let mut stack = vec![Path::new(RUN_NET).join(sub)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else if std::fs::read_to_string(e.path())
                    .is_ok_and(|h| h.starts_with(&*root.to_string_lossy()))
                {
                    out.push(e.path().display().to_string());
                }
            }
        }
    }
    for id in ids {
        let p = Path::new(RUN_NET).join("netns").join(id);
        if p.exists() {
            out.push(p.display().to_string());
        }
    }
    out
}

/// What a container's network leaves in this namespace: interfaces (veths, bridges),
/// iptables rules (filter and nat), aardvark-dns processes.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    links: Vec<String>,
    rules: Vec<String>,
    aardvarks: usize,
}

fn snapshot() -> Snapshot {
    let mut links: Vec<String> = lines("ip", &["-o", "link", "show"])
        .into_iter()
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        .collect();
    links.sort();
    let mut rules = lines("iptables", &["-S"]);
    rules.extend(lines("iptables", &["-t", "nat", "-S"]));
    Snapshot {
        links,
        rules,
        aardvarks: aardvarks(),
    }
}

/// A network `name` on `subnet`, with one container run on it and gone: netavark makes its
/// base chains and aardvark starts on the first container and leaves them (as podman's
/// does), so what a test counts before and after starts from there.
fn warmed_network(s: &Setup, subnet: &str, name: &str) -> Snapshot {
    husk_ok(&s.root, &["network", "create", "--subnet", subnet, name]);
    husk_ok(
        &s.root,
        &["run", "--rm", "--network", name, &s.image, "true"],
    );
    snapshot()
}

/// Every container id of `root` (for [`held`]).
fn ids(root: &Path) -> Vec<String> {
    containers(root)
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn wget(url: &str) -> Result<String, String> {
    // (this busybox's wget crashes on -T: `timeout` bounds it instead)
    let o = Command::new("busybox")
        .args(["timeout", "5", "busybox", "wget", "-q", "-O-", url])
        .output()
        .unwrap();
    match o.status.success() {
        true => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
    }
}

/// wget until it answers (the server starts a moment after `run -d` returns).
fn fetch(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match wget(url) {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => panic!("wget {url}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&husk_ok(root, &["inspect", name])).unwrap();
    v[0].clone()
}

#[test]
fn published_tcp_and_udp_ports_port_ps_and_inspect() {
    let _l = lock();
    let s = pulled("net-ports");
    let _rm = RemoveAll(&s.root);
    let echo = udp_echo_binary(s.t.path());
    let (http, udp) = (free_port(), free_port());
    // warm-up: netavark's base chains exist from the first container on
    husk_ok(&s.root, &["run", "--rm", &s.image, "true"]);
    let before = snapshot();
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &format!("{http}:80"),
            &s.image,
            "exec busybox httpd -f -p 80 -h /etc",
        ],
    );
    let vol = format!("{}:/udpecho:ro", echo.display());
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "echo",
            "-v",
            &vol,
            "-p",
            &format!("127.0.0.1:{udp}:7/udp"),
            &s.image,
            "exec /udpecho 7",
        ],
    );
    assert_eq!(fetch(&format!("http://127.0.0.1:{http}/hostname")), "web\n");
    assert_eq!(udp_echo(udp), "ping over udp");

    assert_eq!(
        husk_ok(&s.root, &["port", "web"]),
        format!("80/tcp -> 0.0.0.0:{http}\n")
    );
    assert_eq!(
        husk_ok(&s.root, &["port", "echo", "7/udp"]),
        format!("127.0.0.1:{udp}\n")
    );
    let ps = husk_ok(
        &s.root,
        &["ps", "--format", "{{.Names}} {{.Ports}} {{.Networks}}"],
    );
    assert!(
        ps.contains(&format!("web 0.0.0.0:{http}->80/tcp bridge")),
        "{ps}"
    );
    assert!(
        ps.contains(&format!("echo 127.0.0.1:{udp}->7/udp bridge")),
        "{ps}"
    );
    let ns = &inspect(&s.root, "web")["NetworkSettings"];
    assert_eq!(
        ns["Ports"]["80/tcp"],
        serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": http.to_string()}])
    );
    let ip = ns["Networks"]["bridge"]["IPAddress"].as_str().unwrap();
    assert_eq!(ns["IPAddress"], ip);
    // the container's own address in its /etc/hosts; the test namespace's nameserver
    let etc = husk_ok(
        &s.root,
        &["exec", "web", "cat", "/etc/hosts", "/etc/resolv.conf"],
    );
    assert!(etc.contains(&format!("{ip}\tweb\n")), "{etc}");
    assert!(etc.contains(&format!("nameserver {TEST_DNS}\n")), "{etc}");

    // -P: the image's exposed ports (the test image's 8080/tcp) on a free host port
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "all",
            "-P",
            &s.image,
            "exec busybox httpd -f -p 8080 -h /etc",
        ],
    );
    let line = husk_ok(&s.root, &["port", "all"]);
    let host_port = line
        .strip_prefix("8080/tcp -> 0.0.0.0:")
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(
        fetch(&format!("http://127.0.0.1:{host_port}/hostname")),
        "all\n"
    );

    let ids_before = ids(&s.root);
    husk_ok(&s.root, &["rm", "-f", "web", "echo", "all"]);
    assert_eq!(snapshot(), before);
    assert!(
        held(&s.root, &ids_before).is_empty(),
        "{:?}",
        held(&s.root, &ids_before)
    );
}

#[test]
fn names_resolve_on_user_networks_only() {
    let _l = lock();
    let s = pulled("net-names");
    let _rm = RemoveAll(&s.root);
    let before = warmed_network(&s, "10.91.0.0/24", "app");
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            "app",
            "--network-alias",
            "database",
            "--ip",
            "10.91.0.50",
            "--mac-address",
            "02:42:0a:5b:00:32",
            &s.image,
            "exec busybox httpd -f -p 80 -h /etc",
        ],
    );
    // by name and by alias, through aardvark-dns on the network's gateway
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "app",
            &s.image,
            "cat /etc/resolv.conf; timeout 5 wget -q -O- http://db/hostname; \
             timeout 5 wget -q -O- http://database/hostname; ip addr show eth0",
        ],
    );
    assert!(o.contains("nameserver 10.91.0.1\n"), "{o}");
    assert_eq!(o.matches("db\n").count(), 2, "{o}");
    let ns = &inspect(&s.root, "db")["NetworkSettings"]["Networks"]["app"];
    assert_eq!(ns["IPAddress"], "10.91.0.50");
    assert_eq!(ns["MacAddress"], "02:42:0a:5b:00:32");
    assert_eq!(ns["Gateway"], "10.91.0.1");
    let net: serde_json::Value =
        serde_json::from_str(&husk_ok(&s.root, &["network", "inspect", "app"])).unwrap();
    let members: Vec<&str> = net[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["db"]);
    // not on the default network (as docker): the name does not resolve there
    let (code, _, _) = out(
        &s.root,
        &[
            "run",
            "--rm",
            &s.image,
            "timeout 2 wget -q -O- http://db/hostname",
        ],
    );
    assert_ne!(code, 0);
    // connect: a container of the default network joins app too, and is found there by
    // name and by its new alias; disconnect takes both away again
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "late",
            "-u",
            "0",
            &s.image,
            "exec busybox httpd -f -p 80 -h /etc",
        ],
    );
    husk_ok(
        &s.root,
        &["network", "connect", "--alias", "tardy", "app", "late"],
    );
    let ask =
        "timeout 5 wget -q -O- http://late/hostname; timeout 5 wget -q -O- http://tardy/hostname";
    let o = husk_ok(&s.root, &["run", "--rm", "--network", "app", &s.image, ask]);
    assert_eq!(o, "late\nlate\n");
    let nets = &inspect(&s.root, "late")["NetworkSettings"]["Networks"];
    assert!(
        nets["bridge"].is_object() && nets["app"].is_object(),
        "{nets}"
    );
    husk_ok(&s.root, &["network", "disconnect", "app", "late"]);
    let (_, o, _) = out(&s.root, &["run", "--rm", "--network", "app", &s.image, ask]);
    assert_eq!(o, "");
    husk_ok(&s.root, &["rm", "-f", "late"]);

    // the network is in use: not removed
    let (code, _, e) = out(&s.root, &["network", "rm", "app"]);
    assert_eq!(code, 1, "{e}");
    assert!(e.contains("in use by container(s) db"), "{e}");

    // --internal: no route out of the bridge (the test namespace's own address is not
    // reachable), where an ordinary network has one
    husk_ok(
        &s.root,
        &[
            "network",
            "create",
            "--internal",
            "--subnet",
            "10.92.0.0/24",
            "closed",
        ],
    );
    // a server in the test namespace that closes each connection at once
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let probe = format!("ip route; timeout 5 nc {TEST_DNS} {port} </dev/null && echo reached");
    let open = husk_ok(
        &s.root,
        &["run", "--rm", "--network", "app", &s.image, &probe],
    );
    assert!(
        open.contains("default via 10.91.0.1") && open.contains("reached"),
        "{open}"
    );
    let (_, closed, _) = out(
        &s.root,
        &["run", "--rm", "--network", "closed", &s.image, &probe],
    );
    assert!(
        !closed.contains("default") && !closed.contains("reached"),
        "{closed}"
    );

    let ids_before = ids(&s.root);
    husk_ok(&s.root, &["rm", "-f", "db"]);
    assert_eq!(snapshot(), before);
    assert!(held(&s.root, &ids_before).is_empty());
    let ls = husk_ok(&s.root, &["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls, "bridge\napp\nclosed\n");
    assert_eq!(
        husk_ok(&s.root, &["network", "prune", "-f"]),
        "Deleted Networks:\napp\nclosed\n"
    );
    assert_eq!(
        husk_ok(&s.root, &["network", "ls", "-q"]).lines().count(),
        1
    );
}

#[test]
fn bad_input_is_one_error_and_leaves_nothing() {
    let _l = lock();
    let s = pulled("net-bad");
    let _rm = RemoveAll(&s.root);
    husk_ok(
        &s.root,
        &["network", "create", "--subnet", "10.93.0.0/24", "used"],
    );
    husk_ok(
        &s.root,
        &["run", "--rm", "--network", "used", &s.image, "true"],
    );
    let port = free_port();
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "holder",
            "-p",
            &format!("{port}:80"),
            &s.image,
            "sleep 1000",
        ],
    );
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let before = snapshot();
    // the holder's leases and port
    let held_before = held(&s.root, &[]);
    let containers_before = containers(&s.root);
    let img = s.image.as_str();
    let (p1, p2) = (format!("{port}:80"), format!("{taken_port}:80"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--rm", "--network", "nope", img, "true"],
            "no such network: nope",
        ),
        (vec!["run", "-d", "-p", &p1, img, "true"], "already in use"),
        (
            vec!["run", "--rm", "-p", &p2, img, "true"],
            "already in use",
        ),
        (
            vec!["run", "--rm", "--network", "none", "-p", "80", img, "true"],
            "publishes no ports",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "used",
                "--ip",
                "10.9.9.9",
                img,
                "true",
            ],
            "--ip",
        ),
        (
            vec!["run", "--rm", "--network-alias", "x", img, "true"],
            "user-defined",
        ),
        (vec!["run", "--rm", "-p", "80/sctp", img, "true"], "sctp"),
    ];
    for (args, needle) in &cases {
        let (code, o, e) = out(&s.root, args);
        assert_eq!(code, 125, "{args:?}: {e}");
        assert!(o.is_empty() && e.lines().count() == 1, "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert_eq!(containers(&s.root), containers_before, "{args:?}");
        assert_eq!(snapshot(), before, "{args:?}");
    }
    // a failed start (the command does not exist) undoes its network too
    let (code, _, e) = out(
        &s.root,
        &["run", "--rm", "--network", "used", img, "/no/such"],
    );
    assert_eq!(code, 127, "{e}");
    assert_eq!(snapshot(), before);
    assert_eq!(held(&s.root, &[]), held_before);
    // and so does a `start` of a created container whose command fails (its record
    // stays, so its netns file is checked by id)
    husk_ok(
        &s.root,
        &[
            "create",
            "--name",
            "nostart",
            "--network",
            "used",
            img,
            "/no/such",
        ],
    );
    husk_ok(&s.root, &["start", "nostart"]);
    assert_eq!(husk_ok(&s.root, &["wait", "nostart"]), "127\n");
    assert_eq!(snapshot(), before);
    let id = inspect(&s.root, "nostart")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(held(&s.root, std::slice::from_ref(&id)), held_before);
    husk_ok(&s.root, &["rm", "nostart"]);
    for (args, needle) in [
        (
            vec!["network", "create", "--subnet", "10.93.0.128/25", "x"],
            "overlaps network used",
        ),
        (vec!["network", "create", "used"], "already exists"),
        (
            vec!["network", "create", "--subnet", "10.1.2.3", "y"],
            "subnet",
        ),
        (vec!["network", "create", "none"], "invalid network name"),
        (vec!["network", "rm", "bridge"], "default network"),
        (vec!["network", "rm", "nope"], "no such network"),
    ] {
        let (code, _, e) = out(&s.root, &args);
        assert_eq!(code, 1, "{args:?}: {e}");
        assert!(
            e.contains(needle) && e.lines().count() == 1,
            "{args:?}: {e}"
        );
    }
    drop(taken);
    let ids_before = ids(&s.root);
    husk_ok(&s.root, &["rm", "-f", "holder"]);
    assert!(held(&s.root, &ids_before).is_empty());
}

#[test]
fn every_way_a_container_ends_tears_its_network_down() {
    let _l = lock();
    let s = pulled("net-ends");
    let _rm = RemoveAll(&s.root);
    husk_ok(
        &s.root,
        &["network", "create", "--subnet", "10.94.0.0/24", "ends"],
    );
    let run = |name: &str| {
        husk_ok(
            &s.root,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "ends",
                "-p",
                "80",
                &s.image,
                "exec sleep 1000",
            ],
        );
    };
    run("warm");
    husk_ok(&s.root, &["rm", "-f", "warm"]);
    let before = snapshot();
    let all_ids = || ids(&s.root);

    // stop, then rm
    run("a");
    let ids_a = all_ids();
    assert_ne!(snapshot(), before);
    husk_ok(&s.root, &["stop", "-t", "1", "a"]);
    assert_eq!(snapshot(), before, "after stop");
    assert!(held(&s.root, &ids_a).is_empty());
    // started again: a network again, with the same name resolving
    husk_ok(&s.root, &["start", "a"]);
    assert_ne!(snapshot(), before);
    husk_ok(&s.root, &["rm", "-f", "a"]);
    assert_eq!(snapshot(), before, "after rm -f");
    assert!(held(&s.root, &ids_a).is_empty());

    // the monitor killed (-9), then rm -f
    run("b");
    let ids_b = all_ids();
    let mon = inspect(&s.root, "b");
    let id = mon["Id"].as_str().unwrap().to_string();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.root.join("containers").join(&id).join("container.json"))
            .unwrap(),
    )
    .unwrap();
    let monitor = meta["monitor_pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    husk_ok(&s.root, &["rm", "-f", "b"]);
    assert_eq!(snapshot(), before, "after a dead monitor and rm -f");
    assert!(held(&s.root, &ids_b).is_empty());

    // a foreground run with --rm, and `create` (nothing set up until start)
    husk_ok(
        &s.root,
        &["run", "--rm", "--network", "ends", &s.image, "true"],
    );
    husk_ok(
        &s.root,
        &[
            "create",
            "--name",
            "c",
            "--network",
            "ends",
            &s.image,
            "true",
        ],
    );
    assert_eq!(snapshot(), before, "after create");
    husk_ok(&s.root, &["rm", "c"]);
    assert_eq!(snapshot(), before);
    assert!(held(&s.root, &all_ids()).is_empty());
}

#[test]
fn fifty_containers_on_one_network_get_distinct_addresses_and_reach_each_other() {
    let _l = lock();
    let s = pulled("net-fifty");
    let _rm = RemoveAll(&s.root);
    let before = warmed_network(&s, "10.95.0.0/24", "many");
    let started = Instant::now();
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (root, image) = (s.root.clone(), s.image.clone());
            std::thread::spawn(move || {
                husk_ok(
                    &root,
                    &[
                        "run",
                        "-d",
                        "--name",
                        &format!("c{i}"),
                        "--network",
                        "many",
                        // root, for ping's raw socket (busybox's ping has no other)
                        "-u",
                        "0",
                        &image,
                        "exec sleep 1000",
                    ],
                );
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let took = started.elapsed();
    let mut ips: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..50 {
        let name = format!("c{i}");
        let c = inspect(&s.root, &name);
        let ip = c["NetworkSettings"]["Networks"]["many"]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(ip.starts_with("10.95.0."), "{name}: {ip}");
        ips.insert(ip, name);
    }
    assert_eq!(ips.len(), 50, "distinct addresses: {ips:?}");
    // each reaches every other (one ping each, all from a few containers in turn, plus
    // every container reaching the first by name). Not all 2,450 pairs: they need as many
    // neighbour (ARP) entries, and the kernel keeps one table for the whole machine (every
    // namespace) that refuses entries beyond gc_thresh3, 1,024 by default ("neighbor
    // table overflow" in the kernel's log once the 12th has pinged all the others): a
    // setting of the machine, not of a namespace.
    let all: Vec<&str> = ips.keys().map(String::as_str).collect();
    let script = format!(
        "for ip in {}; do ping -c 1 -W 2 $ip >/dev/null 2>&1 || echo unreachable $ip; done",
        all.join(" ")
    );
    for name in ["c0", "c25", "c49"] {
        let o = husk_ok(&s.root, &["exec", name, "sh", "-c", &script]);
        assert_eq!(o, "", "{name}: {o}");
    }
    for i in 0..50 {
        let o = husk_ok(
            &s.root,
            &["exec", &format!("c{i}"), "sh", "-c", "ping -c 1 -W 2 c0"],
        );
        assert!(o.contains("1 packets received"), "c{i}: {o}");
    }
    let ids_before = ids(&s.root);
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let root = s.root.clone();
            std::thread::spawn(move || husk_ok(&root, &["rm", "-f", &format!("c{i}")]))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(snapshot(), before);
    assert!(held(&s.root, &ids_before).is_empty());
    eprintln!("50 concurrent runs on one network: {took:?}");
}
