//! The capabilities tracing needs: CAP_BPF and CAP_PERFMON (kernel 5.8+), or CAP_SYS_ADMIN.

use std::fs;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability bits of this process, from `/proc/self/status`.
pub fn effective() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// The names of the capabilities missing for loading and attaching tracepoint programs,
/// empty when tracing is allowed.
pub fn missing_for_tracing(effective: u64) -> Vec<&'static str> {
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    missing
}

/// `Err` with one line naming what is missing when this process may not trace.
pub fn check() -> Result<(), String> {
    let Some(effective) = effective() else {
        return Ok(()); // no /proc: let the kernel answer
    };
    let missing = missing_for_tracing(effective);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing capability {} (run as root, or grant CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)",
            missing.join(" and ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cap_eff_and_names_what_is_missing() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let all = parse_cap_eff(status).unwrap();
        assert!(missing_for_tracing(all).is_empty());
        assert_eq!(missing_for_tracing(0), vec!["CAP_BPF", "CAP_PERFMON"]);
        assert_eq!(missing_for_tracing(1 << CAP_BPF), vec!["CAP_PERFMON"]);
        assert!(missing_for_tracing(1 << CAP_SYS_ADMIN).is_empty());
    }
}
