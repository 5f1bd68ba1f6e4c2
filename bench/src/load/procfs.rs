//! Linux `/proc` sampling of another process: CPU time and resident memory.

use std::time::Duration;

/// Clock ticks per second for `/proc/<pid>/stat` times.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid`.
#[must_use]
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`; utime and stime are fields 14 and 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((ut + st) / ticks_per_s()))
}

/// Context switches (voluntary + involuntary) of every thread of `pid` so
/// far: each wake-up of a sleeping thread is one. Threads that have exited
/// no longer count.
#[must_use]
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(s) = std::fs::read_to_string(t.ok()?.path().join("status")) else {
            continue;
        };
        total += s
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
#[must_use]
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(status_bytes(pid, "VmRSS").unwrap() > 0);
        assert!(cpu_time(pid).is_some());
        let before = context_switches(pid).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(
            context_switches(pid).unwrap() > before,
            "a sleep is a switch"
        );
    }
}
