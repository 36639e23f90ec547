//! A RUN step on a bridge network (root's default, as `husk run`'s): the step's network
//! namespace, held by a small process of ours ([`netns::hold_new`]) rather than bound on
//! a file, because the build mounts in a namespace of its own and its guardian, which
//! tears down after a killed build, lives in the caller's: /proc/PID/ns/net reads the
//! same from both. netavark puts it on the network (network/setup.rs, with the addresses
//! leased as for a container, the step's directory as the owner) before the RUN's
//! container is made, which joins it by path; after the step, however it ended,
//! [`StepNet`]'s drop tears it down and ends the holder. A killed build leaves the step's
//! directory (and in it network.json and the holder's pid file) to its guardian, or to the
//! next build's sweep: [`cleanup`].

use crate::engine::Engine;
use crate::network::netns;
use crate::network::setup::{self, Request, Wanted};
use crate::network::{Network, NetworkError};
use std::path::{Path, PathBuf};

const HOLDER: &str = "netns-holder.pid";

/// A step's network while it is up.
pub struct StepNet {
    dir: PathBuf,
    /// The namespace the RUN joins.
    pub netns: PathBuf,
}

/// Put a new namespace for the step in `dir` (its container `id`) on `network`, and write
/// its /etc/hostname, hosts and resolv.conf into `dir` (the address it got, the network's
/// DNS or the engine's nameservers). On failure nothing is left.
pub fn connect(engine: &Engine, dir: &Path, id: &str, network: &str) -> crate::Result<StepNet> {
    let holder = dir.join(HOLDER);
    netns::hold_new(&holder).map_err(NetworkError::Netns)?;
    // From here the drop undoes what was done (a failed connect has undone its own part).
    let mut net = StepNet {
        dir: dir.to_path_buf(),
        netns: PathBuf::new(),
    };
    let wanted = [Wanted {
        network: network.to_string(),
        ..Default::default()
    }];
    let a = setup::connect(
        &engine.networks_store(),
        engine.root(),
        dir,
        &Request {
            id,
            name: id,
            networks: &wanted,
            ports: &[],
            held_by: Some(&holder),
        },
    )?;
    net.netns = a.netns.clone();
    let etc = crate::networks::EtcRequest {
        hostname: super::run::HOSTNAME.into(),
        name: id.into(),
        ..Default::default()
    };
    engine.write_etc(dir, &Network::Bridge, &etc, Some(&a))?;
    Ok(net)
}

impl Drop for StepNet {
    fn drop(&mut self) {
        cleanup(&self.dir);
    }
}

/// Undo a step's network in `dir` (its namespace torn down by netavark while the holder
/// still holds it, the leases released, the holder ended); nothing when there is none.
/// Errors are not reported: this runs on the way out of a failed or killed build.
pub fn cleanup(dir: &Path) {
    let _ = setup::teardown(dir);
    netns::release(&dir.join(HOLDER));
}

/// [`cleanup`] for every step directory of a build's work dir (a killed build's).
pub fn cleanup_all(work: &Path) {
    for e in std::fs::read_dir(work).into_iter().flatten().flatten() {
        let p = e.path();
        if p.join(HOLDER).exists() || setup::load(&p).is_some() {
            cleanup(&p);
        }
    }
}
