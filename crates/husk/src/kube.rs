//! `husk kube play|down|generate` (and podman's older `husk play kube`): printing over the
//! engine's Kubernetes manifests (husk_engine::kube).

use crate::cli::KubeCmd;
use crate::Failure;
use husk_engine::kube::PlayOptions;
use husk_engine::Engine;
use std::io::Read;

fn read(file: &str) -> Result<String, Failure> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}").into())
}

pub fn run(e: &Engine, cmd: KubeCmd) -> Result<(), Failure> {
    match cmd {
        KubeCmd::Play(a) => {
            let yaml = read(&a.file)?;
            for id in e.kube_play(&a.file, &yaml, &PlayOptions { replace: a.replace })? {
                println!("{id}");
            }
        }
        KubeCmd::Down { file } => {
            for id in e.kube_down(&file, &read(&file)?)? {
                println!("{id}");
            }
        }
        KubeCmd::Generate { what } => print!("{}", e.kube_generate(&what)?),
    }
    Ok(())
}
