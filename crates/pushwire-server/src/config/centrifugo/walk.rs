//! Walks a configuration tree against the catalogue: keeps, moves, translates or drops each
//! Centrifugo key and reports what it did. Keys that are not Centrifugo's are left in place
//! for the typed load (pushwire's own keys, or typos that the typed load names).

use serde_json::{Map, Value};

use super::catalogue::{Catalogue, Class, Entry};
use super::report::{Report, Status};
use super::special;
use super::value::{coerce, is_default};

/// Looks up an environment variable by name.
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// State shared by the walk and the functions of `special.rs`.
#[derive(Default)]
pub struct Ctx {
    /// Values to set at a full path once the walk is done (moves across sections).
    pub deferred: Vec<(String, Value)>,
    /// `channel.publication_data_format`, applied to the namespaces afterwards.
    pub global_data_format: Option<Value>,
    /// `engine.redis.tls.enabled = true`: the engine's addresses become `rediss://`
    /// afterwards.
    pub redis_tls: bool,
    /// Where `${CENTRIFUGO_VAR_…}` references are looked up (the process environment unless a
    /// test says otherwise).
    pub env: Option<EnvLookup>,
}

impl Ctx {
    /// Looks up an environment variable.
    pub fn env(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(f) => f(name),
            None => std::env::var(name).ok(),
        }
    }
}

/// Rewrites `root` in place (a Centrifugo or pushwire configuration as a JSON tree).
pub fn translate(root: &mut Value, report: &mut Report, mut ctx: Ctx) {
    if let Value::Object(map) = root {
        walk_object(map, "", "", report, &mut ctx);
    }
    for (path, v) in ctx.deferred.drain(..) {
        insert_path(root, &path, v);
    }
    if let Some(format) = ctx.global_data_format.take() {
        special::apply_global_data_format(root, &format);
    }
    if ctx.redis_tls {
        special::apply_redis_tls(root);
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// Sets `v` at a dotted path unless something is there already (an explicit pushwire key
/// wins over a translated Centrifugo one).
pub fn insert_path(root: &mut Value, path: &str, v: Value) {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            return;
        }
        let map = cur.as_object_mut().expect("checked");
        if i + 1 == parts.len() {
            map.entry(p.to_string()).or_insert(v);
            return;
        }
        cur = map
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Walks one object whose keys sit under `pattern` (catalogue form) / `concrete` (report form).
pub fn walk_object(
    map: &mut Map<String, Value>,
    pattern: &str,
    concrete: &str,
    report: &mut Report,
    ctx: &mut Ctx,
) {
    let cat = Catalogue::get();
    let mut keys: Vec<String> = map.keys().cloned().collect();
    // Translating functions last: they may look at or rename their siblings.
    keys.sort_by_key(|k| {
        matches!(
            cat.lookup(&join(pattern, k)).map(|e| e.class),
            Some(Class::Fn(_))
        )
    });
    for k in keys {
        if !map.contains_key(&k) {
            continue;
        }
        let pat = join(pattern, &k);
        let conc = join(concrete, &k);
        match cat.lookup(&pat) {
            Some(e) if e.is_object_list() => walk_list(e, map, &k, &pat, &conc, report, ctx),
            Some(e) => apply(e, map, &k, &conc, report, ctx),
            None if cat.is_section(&pat) => match map.get_mut(&k) {
                Some(Value::Object(child)) => {
                    let had_keys = !child.is_empty();
                    walk_object(child, &pat, &conc, report, ctx);
                    // A section whose every key was translated away (`health: {enabled}`)
                    // goes too: pushwire may not have that section.
                    if had_keys && child.is_empty() {
                        map.remove(&k);
                    }
                }
                _ => report.push(conc, Status::Supported, true),
            },
            None => report.push(conc, Status::Pushwire, true),
        }
    }
}

fn walk_list(
    e: &Entry,
    map: &mut Map<String, Value>,
    key: &str,
    pattern: &str,
    concrete: &str,
    report: &mut Report,
    ctx: &mut Ctx,
) {
    let Some(Value::Array(items)) = map.get_mut(key) else {
        // Left to the typed load, which names the key.
        return report.push(concrete, Status::Supported, true);
    };
    let elem_pattern = format!("{pattern}[]");
    let mut keep = Vec::with_capacity(items.len());
    for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
        let conc = format!("{concrete}[{i}]");
        let Value::Object(obj) = &mut item else {
            keep.push(item);
            continue;
        };
        let mut own = Report::default();
        walk_object(obj, &elem_pattern, &conc, &mut own, ctx);
        if e.key == "consumers" && special::centrifugo_consumer_disabled(obj, &own) {
            for mut l in own.lines {
                l.status = Status::Ignored("consumer not enabled (Centrifugo's default)".into());
                l.set = false;
                report.lines.push(l);
            }
            continue;
        }
        report.lines.extend(own.lines);
        keep.push(item);
    }
    map.insert(key.to_string(), Value::Array(keep));
}

fn apply(
    e: &Entry,
    map: &mut Map<String, Value>,
    key: &str,
    concrete: &str,
    report: &mut Report,
    ctx: &mut Ctx,
) {
    let v = map.get_mut(key).expect("present");
    if let Err(why) = coerce(e.go_type, v) {
        return report.push(concrete, Status::Invalid(why), true);
    }
    if matches!(e.go_type, "MapStringString" | "StringKeyValues") {
        let lookup = |n: &str| ctx.env(n);
        if let Err(why) = special::string_map(v, &lookup) {
            return report.push(concrete, Status::Invalid(why), true);
        }
    }
    let set = !is_default(e.go_type, e.default, v);
    match e.class {
        Class::Same => report.push(concrete, Status::Supported, set),
        Class::Map(to) => {
            let v = map.remove(key).expect("present");
            place(map, to, v, ctx);
            report.push(concrete, Status::Mapped(format!("as {to}")), set);
        }
        Class::Fn(name) => {
            let status = special::apply(name, map, key, ctx, set).unwrap_or_else(Status::Invalid);
            report.push(concrete, status, set);
        }
        Class::Covered => {
            map.remove(key);
            report.push(concrete, Status::Mapped(e.note.to_string()), set);
        }
        Class::Ignore => {
            map.remove(key);
            report.push(concrete, Status::Ignored(e.note.to_string()), set);
        }
        Class::Refuse => {
            map.remove(key);
            let status = if set {
                Status::Unsupported(e.note.to_string())
            } else {
                Status::Ignored(e.note.to_string())
            };
            report.push(concrete, status, set);
        }
    }
}

/// Puts a translated value under `to`: a sibling key, or a full path when `to` has a dot.
pub fn place(map: &mut Map<String, Value>, to: &str, v: Value, ctx: &mut Ctx) {
    if to.contains('.') {
        ctx.deferred.push((to.to_string(), v));
    } else {
        map.entry(to.to_string()).or_insert(v);
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}
