//! Layer create/apply from the command line, for `bench/store.sh`:
//!
//! ```text
//! cargo run --release -p rbuild-store --example layer -- create STORE_ROOT DIR   # prints the diffID
//! cargo run --release -p rbuild-store --example layer -- apply TAR TARGET_DIR
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use rbuild_store::layer::{ApplyOptions, CreateOptions, apply_layer_file};
use rbuild_store::{LayerSource, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create", root, dir] => {
            let store = Store::open(root)?;
            let info = store.add_layer(
                &LayerSource::Tree(PathBuf::from(dir)),
                &CreateOptions::from_env(),
            )?;
            println!("{} {}", info.diff_id, info.size);
        }
        ["apply", tar, target] => {
            std::fs::create_dir_all(target)?;
            let mut f = std::fs::File::open(tar)?;
            apply_layer_file(&mut f, target.as_ref(), &ApplyOptions::default(), tar)?;
        }
        _ => return Err("usage: layer create STORE_ROOT DIR | layer apply TAR TARGET".into()),
    }
    Ok(())
}
