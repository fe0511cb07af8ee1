//! The open-file limit of this process, read from `/proc/self/limits`.

use crate::error::BenchError;

/// File descriptors kept free for the runtime, the HTTP publisher and stdio.
const SPARE_FDS: u64 = 128;

/// Fails early when `connections` sockets cannot fit under the soft open-file limit.
/// Nothing is raised: the limit is whatever the OS gave this process.
pub(crate) fn check_open_files(connections: u64) -> Result<(), BenchError> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(());
    };
    if let Some(limit) = parse_open_files_limit(&limits)
        && connections + SPARE_FDS > limit
    {
        return Err(BenchError::OpenFiles {
            needed: connections + SPARE_FDS,
            limit,
        });
    }
    Ok(())
}

/// Soft limit from the `Max open files` line; `None` when absent or unlimited.
pub(crate) fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), None);
        assert_eq!(parse_open_files_limit(""), None);
    }

    #[test]
    fn rejects_too_many() {
        let limited = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| parse_open_files_limit(&l))
            .is_some();
        assert_eq!(check_open_files(u64::MAX / 2).is_err(), limited);
        check_open_files(1).unwrap();
    }
}
