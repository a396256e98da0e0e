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

/// The process listening on TCP `port` of this machine (IPv4 or IPv6), found through the
/// socket's inode in `/proc/net/tcp*` and `/proc/*/fd`: a local server's pid, for its CPU time.
/// `None` when nothing listens there or the process is not readable (another user's).
pub fn listening_pid(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields.get(1)?.rsplit_once(':')?.1;
                // State 0A is LISTEN.
                (u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == "0A")
                    .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
                    .flatten()
            })
        })?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|link| link.as_os_str() == inode.as_str())
                })
                .then_some(pid)
        })
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

    #[test]
    fn the_process_listening_on_a_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening_pid(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(listening_pid(port), None, "nothing listens there any more");
    }
}
