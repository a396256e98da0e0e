//! What Linux's `/proc` says about a process: CPU time and memory (for the worker's metrics and
//! the benchmarks). Each function returns `None` where `/proc` is missing or unreadable.

use std::time::Duration;

/// User + system CPU time of every thread of process `pid` (`self` for this one) so far, from
/// `/proc/PID/stat` (clock ticks of 1/100 s, the fixed `USER_HZ` of Linux's `/proc`).
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Resident memory of this process now (`VmRSS`), in bytes.
pub fn resident_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
pub fn peak_resident_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// A `kB` line of `/proc/self/status`.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(cpu_time("self").is_some_and(|t| t > Duration::ZERO));
        let rss = resident_bytes().expect("VmRSS");
        assert!(rss > 0 && peak_resident_bytes().expect("VmHWM") >= rss);
        assert_eq!(cpu_time("0"), None, "no such process");
    }
}
