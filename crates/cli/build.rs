//! Link the `rbuild` binary as a position-dependent executable. Every container command is a
//! short-lived process, so startup is a large share of its latency: in a PIE, the dynamic
//! loader applies ~25,000 relative relocations at each start, writing (and so copying) every
//! page of `.data.rel.ro` (~110 pages), a third of the page faults of `rbuild --version`.
//! Without PIE they are resolved at link time (`rbuild rm`: 4.3 → 3.6 ms, see
//! docs/BENCHMARKS.md). The trade-off is no address randomization of the binary's own code,
//! as with Go's default builds of docker, containerd and runc.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        println!("cargo:rustc-link-arg-bin=rbuild=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
