//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` for the container: written into the
//! container's directory and bind-mounted, as docker does, unless the spec mounts its own.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{MountBuilder, Spec};

use crate::error::Error;

/// Write the three files into `dir` and add their bind mounts to `spec`.
pub fn provide(spec: &mut Spec, dir: &Path, own_network: bool) -> Result<(), Error> {
    let hostname = spec.hostname().clone().unwrap_or_default();
    let hosts = if own_network {
        let mut h = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        );
        if !hostname.is_empty() {
            h.push_str(&format!("127.0.1.1\t{hostname}\n"));
        }
        h
    } else {
        fs::read_to_string("/etc/hosts").unwrap_or_else(|_| "127.0.0.1\tlocalhost\n".into())
    };
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let files = [
        ("/etc/hosts", "hosts", hosts),
        ("/etc/hostname", "hostname", format!("{hostname}\n")),
        ("/etc/resolv.conf", "resolv.conf", resolv),
    ];
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (dest, name, content) in files {
        if mounts.iter().any(|m| m.destination() == Path::new(dest)) {
            continue;
        }
        let path = dir.join(name);
        fs::write(&path, content).map_err(Error::io(&path))?;
        let m = MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(path)
            .options(vec!["rbind".to_owned(), "rprivate".to_owned()])
            .build()
            .map_err(|e| Error::InvalidSpec(e.to_string()))?;
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}
