//! Empty: this crate holds only tests (tests/cri.rs) and a benchmark (examples/cri_bench.rs)
//! of husk-runtime under containerd's CRI plugin; see docs/kubernetes.md.
