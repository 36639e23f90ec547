//! Writes husk's man pages from its clap definitions (src/cli.rs, included as is): husk.1
//! and one husk-COMMAND.1 per command (husk-image-ls.1 for nested ones) into OUT_DIR/man.
//! scripts/demo.sh installs them; `man husk-ps` then reads like `husk ps --help`.

use clap::CommandFactory;
use std::path::Path;

#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;

fn write_pages(cmd: clap::Command, name: String, dir: &Path) -> std::io::Result<()> {
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(sub.clone(), sub_name, dir)?;
    }
    // clap takes a &'static name without its `string` feature; a build script can leak it.
    let page = cmd.name(&*Box::leak(name.clone().into_boxed_str()));
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)
}

fn main() {
    println!("cargo:rerun-if-changed=src/cli.rs");
    let out = std::env::var_os("OUT_DIR").expect("OUT_DIR");
    let dir = Path::new(&out).join("man");
    std::fs::create_dir_all(&dir).expect("creating OUT_DIR/man");
    let mut cmd = cli::Cli::command();
    cmd.build();
    write_pages(cmd, "husk".into(), &dir).expect("writing the man pages");
}
