//! `ADD` of a local archive by hand: `add_extract ARCHIVE DEST` extracts ARCHIVE (tar, plain
//! or gzip/bzip2/xz/zstd) into DEST as a build step would; a non-archive is reported, not
//! copied. Used by bench/add.sh.
#![allow(clippy::print_stderr)] // an example's error output

use std::path::Path;
use std::process::ExitCode;

use rbuild_builder::archive::{ExtractOptions, extract, is_archive};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [archive, dest] = args.as_slice() else {
        eprintln!("usage: add_extract ARCHIVE DEST");
        return ExitCode::from(2);
    };
    if !is_archive(Path::new(archive)) {
        eprintln!("{archive}: not an archive (ADD would copy it as a file)");
        return ExitCode::from(1);
    }
    match extract(
        Path::new(archive),
        Path::new(dest),
        &ExtractOptions::default(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
