//! Facts read from /proc (and the CPU list in /sys): numbered entries, kernel threads,
//! interrupt names, tasks waiting in recv-family syscalls, the readers of our own stdout.

use std::{collections::HashMap, fs, path::Path};

use tracer_common::IGNORE_SLOTS;

/// The entries of `dir` named by a number (`/proc/<pid>`, `/proc/<pid>/task/<tid>`), with
/// their paths; empty if `dir` cannot be read.
pub fn numbered_entries(dir: &std::path::Path) -> impl Iterator<Item = (u32, std::path::PathBuf)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path())))
}

/// Comms of the ksoftirqd threads (tid -> `ksoftirqd/N`), so NET_RX work that runs in them
/// is recognised before any sched event names them.
pub fn kernel_thread_comms() -> HashMap<u32, String> {
    let mut comms = HashMap::new();
    for (pid, dir) in numbered_entries(std::path::Path::new("/proc")) {
        if let Ok(comm) = fs::read_to_string(dir.join("comm"))
            && comm.starts_with("ksoftirqd/")
        {
            comms.insert(pid, comm.trim_end().to_owned());
        }
    }
    comms
}

/// IRQ number -> action name from the text of `/proc/interrupts` (the last column).
pub fn parse_interrupts(text: &str) -> HashMap<u32, String> {
    let mut irqs = HashMap::new();
    for line in text.lines().skip(1) {
        let Some((number, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        if let Some(action) = rest.split_whitespace().last() {
            irqs.insert(number, action.to_owned());
        }
    }
    irqs
}

/// This process, then the processes that read its stdout when that is a pipe (`| grep`):
/// tracing them would trace our own output being consumed.
pub fn ignored_tgids() -> Vec<u32> {
    let me = std::process::id();
    let mut tgids = vec![me];
    let Ok(stdout) = fs::read_link("/proc/self/fd/1") else {
        return tgids;
    };
    let stdout = stdout.to_string_lossy().into_owned();
    if !stdout.starts_with("pipe:") {
        return tgids;
    }
    for (pid, dir) in numbered_entries(Path::new("/proc")) {
        if pid == me || tgids.len() >= IGNORE_SLOTS {
            continue;
        }
        let Ok(fds) = fs::read_dir(dir.join("fd")) else {
            continue;
        };
        let reads_our_pipe = fds.flatten().any(|fd| {
            let same_pipe =
                fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy() == stdout);
            same_pipe && opened_read_only(&dir, &fd.file_name().to_string_lossy())
        });
        if reads_our_pipe {
            tgids.push(pid);
        }
    }
    tgids
}

/// Whether `/proc/<pid>/fdinfo/<fd>` says the fd is open for reading only (O_RDONLY).
fn opened_read_only(proc_dir: &Path, fd: &str) -> bool {
    let Ok(info) = fs::read_to_string(proc_dir.join("fdinfo").join(fd)) else {
        return false;
    };
    info.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 == 0)
}

/// Threads blocked in a recv-family or wait syscall right now (`/proc/*/task/*/syscall`), so a
/// reader that was already waiting when tracing began is followed from its first packet;
/// each with its `RECV_TASKS` value (`abi::recv_tasks_value`).
pub fn tasks_in_recv() -> Vec<(u32, u8)> {
    let mut tids = Vec::new();
    for (_, process) in numbered_entries(Path::new("/proc")) {
        for (tid, task) in numbered_entries(&process.join("task")) {
            let Ok(syscall) = fs::read_to_string(task.join("syscall")) else {
                continue;
            };
            let number = syscall
                .split_whitespace()
                .next()
                .and_then(|nr| nr.parse::<u64>().ok());
            if let Some(syscall) = number.and_then(tracer_common::abi::traced_syscall) {
                tids.push((tid, tracer_common::abi::recv_tasks_value(syscall)));
            }
        }
    }
    tids
}

/// The thread ids of a process at this moment.
pub fn threads_of(pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = numbered_entries(Path::new(&format!("/proc/{pid}/task")))
        .map(|(tid, _)| tid)
        .collect();
    if tids.is_empty() {
        tids.push(pid);
    }
    tids
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-1`).
pub fn possible_cpus() -> Option<u32> {
    let text = fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    let last = text.trim().rsplit(['-', ',']).next()?.parse::<u32>().ok()?;
    Some(last + 1)
}

/// Number of online CPUs (`/sys/devices/system/cpu/online`, e.g. `0-3,6`), whatever this
/// process's own affinity.
pub fn online_cpus() -> Option<u32> {
    cpus_in_list(
        fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()?
            .trim(),
    )
}

/// How many CPUs a kernel CPU list (`0-3,6,8-9`) names; `None` if it does not parse.
fn cpus_in_list(list: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in list.split(',').filter(|part| !part.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.parse::<u32>().ok()?, last.parse::<u32>().ok()?),
            None => {
                let cpu = part.parse::<u32>().ok()?;
                (cpu, cpu)
            }
        };
        count = count.checked_add(last.checked_sub(first)? + 1)?;
    }
    (count > 0).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cpu_lists() {
        assert_eq!(cpus_in_list("0-1"), Some(2));
        assert_eq!(cpus_in_list("0"), Some(1));
        assert_eq!(cpus_in_list("0-3,6,8-9"), Some(7));
        assert_eq!(cpus_in_list(""), None);
        assert_eq!(cpus_in_list("3-1"), None);
        assert_eq!(cpus_in_list("x"), None);
    }

    #[test]
    fn parses_proc_interrupts() {
        let text = "           CPU0       CPU1\n\
            \x20 38:          0       5491 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n\
            \x20 39:       5169          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0\n\
            NMI:          0          0   Non-maskable interrupts\n";
        let irqs = parse_interrupts(text);
        assert_eq!(irqs.get(&38).map(String::as_str), Some("virtio2-input.0"));
        assert_eq!(irqs.get(&39).map(String::as_str), Some("virtio2-output.0"));
        assert_eq!(irqs.len(), 2);
    }
}
