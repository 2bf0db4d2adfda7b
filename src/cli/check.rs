//! `jwt-policy check`: JWTPolicy resources and WasmPlugin `pluginConfig`s against the filter's
//! own parser.

use std::fmt::Write as _;

use super::docs::{kind, load, name};
use crate::config;

pub(crate) fn check(files: &[String], out: &mut String) -> Result<bool, String> {
    if files.is_empty() {
        return Err("check needs files (see `jwt-policy help`)".to_string());
    }
    let mut ok = true;
    for file in files {
        let docs = match load(file) {
            Ok(docs) => docs,
            Err(e) => {
                let _ = writeln!(out, "{e}");
                ok = false;
                continue;
            }
        };
        let mut checked = 0;
        for (i, doc) in docs.iter().enumerate() {
            // A WasmPlugin runs in an Istio proxy, whose routes carry no labels of ours.
            let (what, config, proxy) = match kind(doc) {
                "JWTPolicy" => ("JWTPolicy", doc.clone(), config::Proxy::Envoy),
                "WasmPlugin" => match doc.pointer("/spec/pluginConfig") {
                    Some(pc) => ("WasmPlugin pluginConfig", pc.clone(), config::Proxy::Istio),
                    None => continue,
                },
                _ => continue,
            };
            checked += 1;
            if let Err(e) = config::parse_on(config.to_string().as_bytes(), proxy) {
                let _ = writeln!(
                    out,
                    "{file}: document {} ({what} {}): {e}",
                    i + 1,
                    name(doc)
                );
                ok = false;
            }
        }
        if ok && checked > 0 {
            let _ = writeln!(out, "{file}: ok ({checked} checked)");
        } else if checked == 0 {
            let _ = writeln!(out, "{file}: no JWTPolicy or WasmPlugin");
        }
    }
    Ok(ok)
}
