//! Resident memory of the server process, read from `/proc/<pid>/status`.

use crate::error::BenchError;

/// VmRSS of process `pid` in bytes.
pub(crate) fn read_vm_rss(pid: u32) -> Result<u64, BenchError> {
    let err = |reason: String| BenchError::ServerMemory { pid, reason };
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| err(format!("{path}: {e}")))?;
    parse_vm_rss(&status).ok_or_else(|| err(format!("no VmRSS line in {path}")))
}

/// Extracts `VmRSS:   1234 kB` from a status file, in bytes.
pub(crate) fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = line.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next().unwrap_or("kB") {
        "B" => 1,
        "kB" => 1024,
        "mB" | "MB" => 1024 * 1024,
        "gB" | "GB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    value.checked_mul(unit)
}

/// Server memory growth: total delta and delta per established connection, in bytes.
pub(crate) fn rss_delta(before: u64, after: u64, connections: u64) -> (i64, Option<i64>) {
    let delta = i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(0);
    let per = i64::try_from(connections)
        .ok()
        .filter(|n| *n > 0)
        .map(|n| delta / n);
    (delta, per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tpushwire\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(5120 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: abc kB\n"), None);
    }

    #[test]
    fn reads_own_rss() {
        let rss = read_vm_rss(std::process::id()).unwrap();
        assert!(rss > 0);
    }

    #[test]
    fn delta_per_connection() {
        assert_eq!(rss_delta(1000, 51_000, 10), (50_000, Some(5000)));
        assert_eq!(rss_delta(5000, 4000, 10), (-1000, Some(-100)));
        assert_eq!(rss_delta(1, 2, 0), (1, None));
    }
}
