//! The admission families (`pushwire_admission_*`): the memory budget, the RSS compared with
//! it, whether new connections are refused, and the refusals by reason. Meanings are in
//! docs/observability.md.

use crate::limits::admission::Admission;

use super::text::Exposition;

/// Appends the admission families to `out`.
pub fn render(out: &mut String, admission: &Admission) {
    let mut e = Exposition::default();
    e.gauge(
        "pushwire_admission_memory_budget_bytes",
        "node.memory_budget (0 = off).",
        admission.budget(),
    );
    e.gauge(
        "pushwire_admission_memory_used_bytes",
        "Resident set last compared with the budget (sampled every 250 ms while a budget is set).",
        admission.rss(),
    );
    e.gauge(
        "pushwire_admission_refusing",
        "1 while new connections are refused for memory (from 90 % of the budget until under 80 %).",
        u64::from(admission.over_budget()),
    );
    let (memory, rate) = admission.refused();
    e.counter(
        "pushwire_admission_refused_memory_total",
        "Connection attempts answered 503 because the node was over its memory high-water mark.",
        memory,
    );
    e.counter(
        "pushwire_admission_refused_rate_total",
        "Connection attempts answered 503 by the node-wide connect rate.",
        rate,
    );
    out.push_str(&e.finish());
}
