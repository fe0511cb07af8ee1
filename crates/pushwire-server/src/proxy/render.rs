//! `pushwire_proxy_*` families for `/metrics` (meanings in docs/observability.md and
//! docs/proxies.md).

use std::sync::atomic::Ordering;

use super::{Proxies, ProxyClient};
use crate::observe::text::Exposition;

/// Appends every proxy's figures to `out`, labelled `proxy="<name>"`.
pub fn render(out: &mut String, proxies: &Proxies) {
    let mut e = Exposition::default();
    let all: Vec<_> = proxies.all().collect();
    let per = |f: &dyn Fn(&ProxyClient) -> i64| -> Vec<(Vec<(&str, String)>, i64)> {
        all.iter()
            .map(|p| (vec![("proxy", p.name().to_owned())], f(p)))
            .collect()
    };
    e.family(
        "pushwire_proxy_requests_total",
        "counter",
        "Calls made to the application backend.",
        per(&|p| p.metrics().requests.load(Ordering::Relaxed) as i64),
    );
    e.family(
        "pushwire_proxy_errors_total",
        "counter",
        "Calls that got no usable answer (timeout, connection, status, content type, size, JSON).",
        per(&|p| p.metrics().errors.load(Ordering::Relaxed) as i64),
    );
    e.family(
        "pushwire_proxy_rejected_total",
        "counter",
        "Calls refused without reaching the backend: no free max_in_flight slot in time, or the circuit breaker open.",
        per(&|p| p.metrics().rejected.load(Ordering::Relaxed) as i64),
    );
    e.family(
        "pushwire_proxy_in_flight",
        "gauge",
        "Calls at the backend now.",
        per(&|p| p.metrics().in_flight.load(Ordering::Relaxed)),
    );
    e.family(
        "pushwire_proxy_circuit_open",
        "gauge",
        "1 while the proxy's circuit breaker is open (calls fail at once).",
        per(&|p| p.breaker_open() as i64),
    );
    e.histogram_family(
        "pushwire_proxy_duration_seconds",
        "Duration of calls that reached the backend.",
        "proxy",
        all.iter()
            .map(|p| (p.name(), p.metrics().latency.snapshot())),
        1e9,
    );
    out.push_str(&e.finish());
}
