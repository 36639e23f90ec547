//! v1 pids, hugetlb, net_cls/net_prio and rdma.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use oci_spec::runtime::{LinuxHugepageLimit, LinuxNetwork, LinuxPids, LinuxRdma};

use super::{limit_value, V1Manager};
use crate::stats::{Hugetlb, Pids};
use crate::{fsutil, CgroupError};

/// pids.max value: a positive limit as is; 0 or negative means unlimited ("max").
pub fn pids_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

pub fn apply_pids(m: &V1Manager, p: &LinuxPids) -> Result<(), CgroupError> {
    let dir = m.require("pids", "pids.limit")?;
    fsutil::write(&dir.join("pids.max"), &pids_value(p.limit()))
}

pub fn pids_stats(dir: &Path, out: &mut Pids) -> Result<(), CgroupError> {
    out.current = fsutil::read_u64(&dir.join("pids.current"))?;
    let max = fsutil::read_u64(&dir.join("pids.max"))?;
    out.limit = if max == u64::MAX { 0 } else { max };
    Ok(())
}

/// Check a hugepage size such as "2MB" or "1GB" (it becomes part of a file name) and that
/// the kernel has huge pages of that size (/sys/kernel/mm/hugepages/hugepages-<N>kB).
pub fn check_page_size(size: &str) -> Result<(), CgroupError> {
    let kb = page_size_kb(size)?;
    let sys = std::path::PathBuf::from(format!("/sys/kernel/mm/hugepages/hugepages-{kb}kB"));
    if !sys.exists() {
        return Err(CgroupError::unsupported(
            format!("hugepageLimits pageSize {size}"),
            format!(
                "the kernel has no such huge page size ({} is missing)",
                sys.display()
            ),
        ));
    }
    Ok(())
}

/// "2MB" → 2048 (kB).
pub fn page_size_kb(size: &str) -> Result<u64, CgroupError> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let n = digits
        .parse::<u64>()
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()));
    let mult = match unit {
        "KB" => 1,
        "MB" => 1024,
        "GB" => 1024 * 1024,
        _ => 0,
    };
    match n {
        Some(n) if mult > 0 && n > 0 => Ok(n * mult),
        _ => Err(CgroupError::invalid(
            "hugepageLimits.pageSize",
            format!("{size:?} (expected e.g. 2MB or 1GB)"),
        )),
    }
}

pub fn apply_hugetlb(m: &V1Manager, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    let dir = m.require("hugetlb", "hugepageLimits")?;
    for l in limits {
        check_page_size(l.page_size())?;
        let what = format!("hugepageLimits {}", l.page_size());
        fsutil::write_required(
            &dir.join(format!("hugetlb.{}.limit_in_bytes", l.page_size())),
            &limit_value(&what, l.limit())?,
            &what,
        )?;
    }
    Ok(())
}

pub fn hugetlb_stats(dir: &Path, out: &mut BTreeMap<String, Hugetlb>) -> Result<(), CgroupError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CgroupError::io("listing", dir, e))?;
    for ent in entries.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(".usage_in_bytes"))
        else {
            continue;
        };
        if size.contains('.') {
            continue; // hugetlb.2MB.rsvd.usage_in_bytes
        }
        let f = |n: &str| dir.join(format!("hugetlb.{size}.{n}"));
        out.insert(
            size.to_string(),
            Hugetlb {
                usage: fsutil::read_u64(&f("usage_in_bytes"))?,
                max: fsutil::read_u64(&f("max_usage_in_bytes"))?,
                failcnt: fsutil::read_u64(&f("failcnt"))?,
            },
        );
    }
    Ok(())
}

pub fn apply_network(m: &V1Manager, n: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        let dir = m.require("net_cls", "network.classID")?;
        fsutil::write(&dir.join("net_cls.classid"), &id.to_string())?;
    }
    let prios = n.priorities().as_deref().unwrap_or_default();
    if !prios.is_empty() {
        let dir = m.require("net_prio", "network.priorities")?;
        for p in prios {
            fsutil::write(
                &dir.join("net_prio.ifpriomap"),
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    Ok(())
}

/// "mlx4_0 hca_handle=2 hca_object=2000" lines for rdma.max (same format on v1 and v2).
pub fn rdma_lines(rdma: &HashMap<String, LinuxRdma>) -> Result<Vec<String>, CgroupError> {
    let mut devs: Vec<_> = rdma.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (dev, l) in devs {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(CgroupError::invalid("rdma device", format!("{dev:?}")));
        }
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line != *dev {
            out.push(line);
        }
    }
    Ok(out)
}

pub fn apply_rdma(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    for line in rdma_lines(rdma)? {
        fsutil::write_required(&dir.join("rdma.max"), &line, "rdma")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_and_pids() {
        assert_eq!(page_size_kb("2MB").unwrap(), 2048);
        assert_eq!(page_size_kb("1GB").unwrap(), 1048576);
        assert_eq!(page_size_kb("64KB").unwrap(), 64);
        assert!(page_size_kb("2M").is_err());
        assert!(page_size_kb("../x").is_err());
        assert!(page_size_kb("MB").is_err());
        assert!(page_size_kb("0MB").is_err());
        assert!(check_page_size("3MB").is_err());
        assert_eq!(pids_value(10), "10");
        assert_eq!(pids_value(0), "max");
        assert_eq!(pids_value(-1), "max");
    }

    #[test]
    fn rdma() {
        let m: HashMap<String, LinuxRdma> = serde_json::from_str(
            r#"{"mlx5_1":{"hcaHandles":3},"mlx4_0":{"hcaHandles":2,"hcaObjects":2000}}"#,
        )
        .unwrap();
        assert_eq!(
            rdma_lines(&m).unwrap(),
            vec!["mlx4_0 hca_handle=2 hca_object=2000", "mlx5_1 hca_handle=3"]
        );
    }
}
