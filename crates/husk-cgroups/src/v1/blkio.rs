//! v1 blkio: weights (CFQ blkio.weight or BFQ blkio.bfq.weight) and throttling.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use super::V1Manager;
use crate::stats::{parse_blkio_v1, Blkio};
use crate::{fsutil, CgroupError};

/// The first of `names` that exists in `dir`.
fn first_existing(
    dir: &Path,
    names: &[&str],
    what: &str,
) -> Result<std::path::PathBuf, CgroupError> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .ok_or_else(|| {
            CgroupError::unsupported(
                what,
                format!("none of {names:?} exists in {}", dir.display()),
            )
        })
}

pub fn apply(m: &V1Manager, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str); 4] = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    let any = nonzero(b.weight()).is_some()
        || nonzero(b.leaf_weight()).is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || throttles
            .iter()
            .any(|(t, _)| t.as_ref().is_some_and(|v| !v.is_empty()));
    if !any {
        return Ok(());
    }
    let dir = m.require("blkio", "blockIO limits")?;
    if let Some(w) = nonzero(b.weight()) {
        let f = first_existing(
            &dir,
            &["blkio.weight", "blkio.bfq.weight"],
            "blockIO.weight",
        )?;
        fsutil::write(&f, &w.to_string())?;
    }
    if let Some(w) = nonzero(b.leaf_weight()) {
        fsutil::write_required(
            &dir.join("blkio.leaf_weight"),
            &w.to_string(),
            "blockIO.leafWeight",
        )?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let f = first_existing(
                &dir,
                &["blkio.weight_device", "blkio.bfq.weight_device"],
                "blockIO.weightDevice",
            )?;
            fsutil::write(&f, &format!("{}:{} {}", d.major(), d.minor(), w))?;
        }
        if let Some(w) = d.leaf_weight() {
            fsutil::write_required(
                &dir.join("blkio.leaf_weight_device"),
                &format!("{}:{} {}", d.major(), d.minor(), w),
                "blockIO.weightDevice.leafWeight",
            )?;
        }
    }
    for (list, file) in throttles {
        for t in list.iter().flatten() {
            // rate 0 removes the limit, as the kernel interprets it
            fsutil::write_required(
                &dir.join(file),
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                file,
            )?;
        }
    }
    Ok(())
}

pub fn stats(dir: &Path, out: &mut Blkio) -> Result<(), CgroupError> {
    // CFQ's accounting files when present, else BFQ's, else the throttle layer's (which
    // sees every bio, so it is always meaningful).
    for (bytes, ios) in [
        (
            "blkio.io_service_bytes_recursive",
            "blkio.io_serviced_recursive",
        ),
        (
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.bfq.io_serviced_recursive",
        ),
        (
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_serviced_recursive",
        ),
    ] {
        if let Some(b) = fsutil::read_opt(&dir.join(bytes))? {
            let b = parse_blkio_v1(&b);
            let i = parse_blkio_v1(&fsutil::read_opt(&dir.join(ios))?.unwrap_or_default());
            if !b.is_empty() || !i.is_empty() {
                out.io_service_bytes_recursive = b;
                out.io_serviced_recursive = i;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// runc and the engines above it send weight 0 for "not set" (docker always does).
pub(crate) fn nonzero(w: Option<u16>) -> Option<u16> {
    w.filter(|w| *w != 0)
}

#[cfg(test)]
mod zero_weight_tests {
    use super::nonzero;

    #[test]
    fn zero_weight_means_unset() {
        assert_eq!(nonzero(Some(0)), None);
        assert_eq!(nonzero(Some(500)), Some(500));
        assert_eq!(nonzero(None), None);
    }
}
