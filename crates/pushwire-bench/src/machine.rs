//! Facts about the machine the bench runs on: CPUs available and load average.

/// CPUs this process may run on (its affinity mask, e.g. 1 under `taskset -c 1`).
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1-minute load average from `/proc/loadavg`; `None` where there is none.
pub(crate) fn load_avg() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_load_avg(&text)
}

fn parse_load_avg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_load_average() {
        assert_eq!(parse_load_avg("0.52 0.58 0.59 1/467 12345\n"), Some(0.52));
        assert_eq!(parse_load_avg(""), None);
        assert!(cpus() >= 1);
        assert!(load_avg().is_some_and(|l| l >= 0.0));
    }
}
