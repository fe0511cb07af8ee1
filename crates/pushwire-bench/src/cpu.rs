//! CPU time used by the server and by the bench during the publish phase, from
//! `/proc/<pid>/stat` (user + system time of every thread of the process).

use crate::report::{ratio, Cpu};

/// CPU seconds used so far by the server (`--server-pid`, when readable) and by the bench.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    server: Option<f64>,
    bench: Option<f64>,
}

impl CpuSample {
    /// Reads both now.
    pub(crate) fn take(server_pid: Option<u32>) -> CpuSample {
        CpuSample {
            server: server_pid.and_then(|pid| cpu_secs(&format!("/proc/{pid}/stat"))),
            bench: cpu_secs("/proc/self/stat"),
        }
    }

    /// What was used between `self` and `later`, over `delivered` first deliveries.
    pub(crate) fn since(self, later: CpuSample, delivered: u64) -> Cpu {
        let used = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        let server_secs = used(self.server, later.server);
        let bench_secs = used(self.bench, later.bench);
        let per = |secs: Option<f64>| secs.map(|s| ratio(s * 1e6, delivered as f64));
        Cpu {
            server_secs,
            server_us_per_delivery: per(server_secs),
            bench_secs,
            bench_us_per_delivery: per(bench_secs),
        }
    }
}

/// User + system seconds of the process whose stat file is `path`.
fn cpu_secs(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let ticks = parse_ticks(&stat)?;
    Some(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name (field 2) may hold spaces and parentheses: fields are counted after its last `)`.
fn parse_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_and_system_ticks() {
        let stat = "4242 (push wire) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 3 0";
        assert_eq!(parse_ticks(stat), Some(175));
        assert_eq!(parse_ticks("garbage"), None);
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = CpuSample::take(None);
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let cpu = before.since(CpuSample::take(None), 1000);
        assert!(cpu.server_secs.is_none());
        assert!(cpu.bench_secs.unwrap() > 0.0, "{cpu:?}");
    }
}
