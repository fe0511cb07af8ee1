//! Centrifugo v6 compatibility of the configuration: a Centrifugo `config.json` / `.yaml` /
//! `.toml` and its `CENTRIFUGO_*` environment load unchanged.
//!
//! Layout:
//! - `keys.txt` + [`catalogue`]: every Centrifugo v6 key and its class (same, mapped,
//!   translated, covered, ignored, refused).
//! - [`value`]: Centrifugo's lenient values (numbers as strings, Go durations).
//! - [`env`]: `CENTRIFUGO_*` variables by Centrifugo's naming rules.
//! - [`walk`] + [`special`]: the rewrite of a configuration tree into pushwire's shape.
//! - [`v5`]: v5 files are recognised and refused with a pointer to Centrifugo's migration.
//! - [`report`]: what happened to each key (`pushwire checkconfig --centrifugo FILE`).

pub mod catalogue;
pub mod env;
pub mod report;
pub mod special;
pub mod v5;
pub mod value;
pub mod walk;

use std::collections::HashMap;

use serde_json::Value;

pub use report::{Report, Status};

/// Applies the `CENTRIFUGO_*` variables of `vars` to `tree`, then rewrites it into pushwire's
/// shape. Errors only for a v5 file; everything else is in the report.
pub fn prepare(tree: &mut Value, vars: &HashMap<String, String>) -> Result<Report, String> {
    if let Some(e) = v5::detect(tree) {
        return Err(e);
    }
    let mut report = Report::default();
    let outcome = env::apply(tree, vars);
    for (var, why) in outcome.invalid {
        report.push(var, Status::Invalid(why), true);
    }
    for var in outcome.unknown {
        let hint = catalogue::Catalogue::get()
            .entries()
            .iter()
            .filter(|e| !e.key.contains("[]"))
            .map(|e| env::var_name("CENTRIFUGO", e.key))
            .min_by_key(|n| strsim_distance(n, &var))
            .filter(|n| strsim_distance(n, &var) <= 4)
            .map(|n| format!(" (did you mean {n}?)"))
            .unwrap_or_default();
        report.push(var, Status::Unknown(hint), true);
    }
    let before = report.lines.len();
    let lookup = vars.clone();
    let ctx = walk::Ctx {
        env: Some(Box::new(move |name: &str| lookup.get(name).cloned())),
        ..Default::default()
    };
    walk::translate(tree, &mut report, ctx);
    // Name the variable a translated key came from.
    for line in &mut report.lines[before..] {
        if let Some((var, _)) = outcome.applied.iter().find(|(_, k)| *k == line.key) {
            line.key = format!("{} (from {var})", line.key);
        }
    }
    if tree
        .pointer("/http_server/address")
        .is_none_or(|a| a.as_str() == Some(""))
        && report.lines.iter().any(|l| l.status != Status::Pushwire)
    {
        report.notes.push(
            "http_server.address is not set: Centrifugo listens on every interface, pushwire \
             on 127.0.0.1 only; set http_server.address = \"0.0.0.0\" (CENTRIFUGO_HTTP_SERVER_ADDRESS) \
             in a container"
                .into(),
        );
    }
    Ok(report)
}

fn strsim_distance(a: &str, b: &str) -> usize {
    catalogue::distance(a, b)
}

#[cfg(test)]
mod tests;
