//! docker's output conventions: inspect's layout for a container and an image, field by
//! field; `--format` Go templates on ps, images, inspect, stats, version, info; ps columns,
//! filters, -q, --no-trunc, -n/-l; a closed pipe; shell completion. Run as root, against a
//! loopback docker-registry.

mod common;
use common::*;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// Removes the test's containers even when an assertion fails.
struct RemoveAll<'a>(&'a std::path::Path);

impl Drop for RemoveAll<'_> {
    fn drop(&mut self) {
        for dir in containers(self.0) {
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let _ = husk(self.0, &["rm", "-f", &id]);
        }
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn docker_layout_templates_and_ps_options() {
    let s = setup("output");
    let root = s.root.as_path();
    let _cleanup = RemoveAll(root);
    let image_id = husk_ok(root, &["pull", &s.image]).trim().to_string();
    let manifest = busybox_image("amd64").manifest.digest.to_string();
    let vol = s.t.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    let bind = format!("{}:/mnt:ro", vol.display());
    let id = husk_ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-v",
            &bind,
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "--restart",
            "on-failure:2",
            "--hostname",
            "webhost",
            "-e",
            "A=1",
            &s.image,
            "sleep 1000",
        ],
    )
    .trim()
    .to_string();
    let (code, _, err) = out(root, &["run", "--name", "ex", &s.image, "exit 3"]);
    assert_eq!(code, 3, "{err}");

    // inspect CONTAINER: docker's layout, field by field.
    let v = json(&husk_ok(root, &["inspect", "web"]));
    assert_eq!(v.as_array().unwrap().len(), 1, "an array, as docker prints");
    let c = &v[0];
    assert_eq!(c["Id"], id.as_str());
    assert!(c["Created"].as_str().unwrap().ends_with('Z'), "{c}");
    assert_eq!(c["Path"], "/bin/sh");
    assert_eq!(c["Args"], serde_json::json!(["-c", "sleep 1000"]));
    let st = &c["State"];
    assert_eq!(st["Status"], "running");
    assert_eq!(
        (
            &st["Running"],
            &st["Paused"],
            &st["Restarting"],
            &st["OOMKilled"]
        ),
        (
            &Value::Bool(true),
            &Value::Bool(false),
            &Value::Bool(false),
            &Value::Bool(false)
        )
    );
    assert!(st["Pid"].as_i64().unwrap() > 0, "{st}");
    assert_eq!(st["ExitCode"], 0);
    assert!(st["StartedAt"].as_str().unwrap().starts_with("20"), "{st}");
    assert_eq!(st["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(c["Image"], format!("sha256:{image_id}"));
    assert_eq!(c["Name"], "/web");
    assert_eq!(c["RestartCount"], 0);
    let cfg = &c["Config"];
    assert_eq!(cfg["Hostname"], "webhost");
    let env = cfg["Env"].as_array().unwrap();
    assert!(
        env.contains(&"A=1".into()) && env.contains(&"GREETING=hello".into()),
        "{cfg}"
    );
    assert_eq!(cfg["Cmd"], serde_json::json!(["sleep 1000"]));
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["WorkingDir"], "/srv");
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["Labels"], serde_json::json!({"org.example": "yes"}));
    assert_eq!(cfg["Image"], s.image.as_str());
    let hc = &c["HostConfig"];
    assert_eq!(hc["Binds"], serde_json::json!([bind]));
    assert_eq!(hc["Memory"], 64 << 20);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(hc["PidsLimit"], 50);
    assert_eq!(
        hc["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2})
    );
    assert_eq!(
        (&hc["Privileged"], &hc["ReadonlyRootfs"]),
        (&Value::Bool(false), &Value::Bool(false))
    );
    // husk's default no_new_privs, as the option that asks for it; the engine's own user
    // namespace is docker's "".
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(hc["UsernsMode"], "");
    let m = &c["Mounts"][0];
    assert_eq!(
        (&m["Type"], &m["Destination"], &m["RW"]),
        (&"bind".into(), &"/mnt".into(), &Value::Bool(false))
    );
    assert_eq!(m["Source"], vol.display().to_string());
    // the default bridge, with the address netavark was given
    let ip = c["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .unwrap_or("");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{c}");
    let ex = &json(&husk_ok(root, &["inspect", "ex"]))[0];
    assert_eq!(
        (&ex["State"]["Status"], &ex["State"]["ExitCode"]),
        (&"exited".into(), &3.into())
    );
    assert_eq!(ex["State"]["Running"], false);
    assert!(
        ex["State"]["FinishedAt"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{ex}"
    );

    // --security-opt as docker records it (a seccomp file by its content, compacted) and
    // --userns as given.
    let profile = s.t.path().join("profile.json");
    std::fs::write(&profile, "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n").unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    husk_ok(
        root,
        &[
            "create",
            "--name",
            "sec",
            "--network",
            "none",
            "--security-opt",
            &seccomp,
            "--security-opt",
            "no-new-privileges:false",
            "--security-opt",
            "apparmor=unconfined",
            "--userns=auto:size=5000",
            &s.image,
        ],
    );
    let hc = &json(&husk_ok(root, &["inspect", "sec"]))[0]["HostConfig"];
    assert_eq!(
        hc["SecurityOpt"],
        serde_json::json!([
            "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}",
            "no-new-privileges:false",
            "apparmor=unconfined"
        ])
    );
    assert_eq!(hc["UsernsMode"], "auto:size=5000");
    husk_ok(root, &["rm", "sec"]);
    husk_ok(
        root,
        &[
            "create",
            "--name",
            "priv",
            "--network",
            "none",
            "--privileged",
            &s.image,
        ],
    );
    let hc = &json(&husk_ok(root, &["inspect", "priv"]))[0]["HostConfig"];
    assert_eq!(hc["SecurityOpt"], Value::Null, "none asked for: {hc}");
    husk_ok(root, &["rm", "priv"]);

    // inspect IMAGE: docker's image layout, also through plain `inspect`.
    let i = &json(&husk_ok(root, &["inspect", &s.image]))[0];
    assert_eq!(i["Id"], format!("sha256:{image_id}"));
    assert_eq!(i["RepoTags"], serde_json::json!([s.image]));
    let repo = s.image.rsplit_once(':').unwrap().0;
    assert_eq!(
        i["RepoDigests"],
        serde_json::json!([format!("{repo}@{manifest}")])
    );
    assert_eq!(i["Created"], "2024-01-02T03:04:05Z");
    assert_eq!(i["Config"]["User"], "app");
    assert_eq!(
        i["Config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["echo $GREETING"]));
    assert_eq!(
        (&i["Architecture"], &i["Os"]),
        (&"amd64".into(), &"linux".into())
    );
    assert!(i["Size"].as_u64().unwrap() > 0, "{i}");
    assert_eq!(i["RootFS"]["Type"], "layers");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        &json(&husk_ok(root, &["image", "inspect", &image_id[..12]]))[0],
        i
    );
    let (code, _, err) = out(root, &["inspect", "--type", "container", &s.image]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");

    // Templates, with docker's field names.
    let t = |args: &[&str]| husk_ok(root, args);
    assert_eq!(
        t(&["inspect", "-f", "{{.State.Status}} {{.Name}}", "web", "ex"]),
        "running /web\nexited /ex\n"
    );
    assert_eq!(
        t(&["inspect", "-f", "{{json .Config.Entrypoint}}", "web"]),
        "[\"/bin/sh\",\"-c\"]\n"
    );
    assert_eq!(
        t(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "web"
        ]),
        "2\n"
    );
    assert_eq!(
        t(&["image", "inspect", "-f", "{{.Id}} {{.Os}}", &s.image]),
        format!("sha256:{image_id} linux\n")
    );
    assert_eq!(
        t(&["ps", "--format", "{{.ID}} {{.Names}} {{.State}}"]),
        format!("{} web running\n", &id[..12])
    );
    let row = json(t(&["ps", "--format", "{{json .}}"]).trim());
    for k in [
        "ID",
        "Image",
        "Command",
        "CreatedAt",
        "RunningFor",
        "Ports",
        "State",
        "Status",
        "Names",
        "Labels",
        "Mounts",
        "Networks",
    ] {
        assert!(row.get(k).is_some(), "{k} missing: {row}");
    }
    assert_eq!(row["Labels"], "org.example=yes");
    // the bind's destination, then the name of the anonymous volume for the image's VOLUME
    let mounts = row["Mounts"].as_str().unwrap();
    assert!(
        mounts.starts_with("/mnt,") && mounts.len() == 5 + 64,
        "{row}"
    );
    assert_eq!(json(t(&["ps", "--format", "json"]).trim()), row);
    assert_eq!(
        t(&["ps", "-a", "--format", "table {{.ID}}\\t{{.Names}}"]),
        format!(
            "CONTAINER ID   NAMES\n{}   ex\n{}   web\n",
            &t(&["inspect", "-f", "{{.Id}}", "ex"])[..12],
            &id[..12]
        )
    );
    assert_eq!(
        t(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]),
        format!("{} {}\n", s.image, &image_id[..12])
    );
    let images = t(&["images", "--format", "table {{.ID}}\t{{.Size}}"]);
    assert!(images.starts_with("IMAGE ID       SIZE\n"), "{images}");
    assert_eq!(t(&["images", "-q"]), format!("{}\n", &image_id[..12]));
    assert_eq!(
        t(&["images", "-q", "--no-trunc"]),
        format!("sha256:{image_id}\n")
    );
    let stats = t(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.ID}} {{.PIDs}}",
        "web",
    ]);
    assert!(stats.starts_with(&format!("web {} ", &id[..12])), "{stats}");
    // Without names: every running container (only web).
    assert_eq!(
        t(&["stats", "--no-stream", "--format", "{{.Name}}"]),
        "web\n"
    );
    let stats = json(t(&["stats", "--no-stream", "--format", "{{json .}}", "web"]).trim());
    for k in [
        "ID",
        "Container",
        "Name",
        "CPUPerc",
        "MemUsage",
        "MemPerc",
        "NetIO",
        "BlockIO",
        "PIDs",
    ] {
        assert!(stats.get(k).is_some(), "{k} missing: {stats}");
    }
    assert_eq!(
        t(&[
            "version",
            "--format",
            "{{.Client.Version}} {{.Server.Version}} {{.Client.Os}}"
        ]),
        format!("{0} {0} linux\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        t(&["info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}} {{.Images}} {{.CgroupDriver}}"]),
        "2 1 0 1 1 cgroupfs\n"
    );
    let info = json(t(&["info", "--format", "{{json .}}"]).trim());
    for k in [
        "Driver",
        "CgroupVersion",
        "DockerRootDir",
        "KernelVersion",
        "ServerVersion",
    ] {
        assert!(info.get(k).is_some(), "{k} missing: {info}");
    }
    let (code, _, err) = out(root, &["ps", "--format", "{{.NoSuchField}}"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");

    // ps: docker's columns and words.
    let table = t(&["ps", "-a"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ]
    );
    let (ex_row, web_row) = (lines.next().unwrap(), lines.next().unwrap());
    assert!(
        ex_row.contains("Exited (3) ") && ex_row.contains(" ago") && ex_row.ends_with(" ex"),
        "{table}"
    );
    assert!(
        web_row.starts_with(&id[..12]) && web_row.contains(&s.image),
        "{table}"
    );
    assert!(
        web_row.contains("\"/bin/sh -c sleep 10…\"") && web_row.contains(" Up "),
        "{table}"
    );
    assert!(
        web_row.contains(" ago ") && web_row.ends_with(" web"),
        "{table}"
    );
    let full = t(&["ps", "--no-trunc"]);
    assert!(
        full.contains(&id) && full.contains("\"/bin/sh -c sleep 1000\""),
        "{full}"
    );
    assert_eq!(t(&["ps", "-q"]), format!("{}\n", &id[..12]));
    assert_eq!(t(&["ps", "-q", "--no-trunc"]), format!("{id}\n"));
    assert_eq!(t(&["ps", "-aq"]).lines().count(), 2);
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        t(&a).lines().map(String::from).collect()
    };
    assert_eq!(names(&["-n", "1"]), ["ex"], "the newest, in any state");
    assert_eq!(names(&["--last", "2"]), ["ex", "web"]);
    assert_eq!(names(&["-l"]), ["ex"]);
    assert_eq!(names(&["--filter", "name=we"]), ["web"]);
    assert_eq!(
        names(&["--filter", "status=exited"]),
        ["ex"],
        "status=exited implies -a"
    );
    assert_eq!(names(&["-a", "--filter", "status=running"]), ["web"]);
    assert_eq!(
        names(&["-a", "-f", "name=web", "-f", "name=ex"]),
        ["ex", "web"]
    );
    assert!(names(&["-a", "-f", "name=web", "-f", "status=exited"]).is_empty());
    assert_eq!(
        names(&["-a", "--filter", "label=org.example=yes"]),
        ["ex", "web"]
    );
    assert_eq!(
        names(&["-a", "--filter", "label=org.example"]),
        ["ex", "web"]
    );
    assert!(names(&["-a", "--filter", "label=org.example=no"]).is_empty());
    assert_eq!(
        names(&["-a", "--filter", &format!("ancestor={}", s.image)]),
        ["ex", "web"]
    );
    assert_eq!(
        names(&["-a", "--filter", &format!("ancestor={}", &image_id[..12])]),
        ["ex", "web"]
    );
    assert!(names(&["-a", "--filter", "ancestor=nosuch"]).is_empty());
    let (code, _, err) = out(root, &["ps", "--filter", "color=red"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("color"), "{err}");

    // A reader that went away: husk ends quietly (SIGPIPE, as any filter), never a panic.
    for args in [&["images"][..], &["ps", "-a"], &["inspect", "web"]] {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let o = Command::new(HUSK)
            .arg("--root")
            .arg(root)
            .args(args)
            .stdout(w)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.signal() == Some(libc::SIGPIPE) && err.is_empty(),
            "husk {args:?} into a closed pipe: {:?} {err}",
            o.status
        );
    }
}

#[test]
fn completion_scripts() {
    let script = |shell: &str| {
        let o = Command::new(HUSK)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let bash = script("bash");
    assert!(bash.contains("husk"), "{bash}");
    // Sourced by bash, it registers a completion for husk that offers the commands.
    let t = TempDir::new("completion");
    let f = t.path().join("husk.bash");
    std::fs::write(&f, &bash).unwrap();
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p husk && COMP_WORDS=(husk ps --) COMP_CWORD=2 COMP_LINE='husk ps --' COMP_POINT=10 && _husk husk -- ps && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            f.display()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("--no-trunc") && stdout.contains("--filter"),
        "{stdout}"
    );
    assert!(script("zsh").contains("#compdef husk"));
    assert!(script("fish").contains("complete -c husk"));
}
