//! Child-process isolation shared by the cold and warm LibreOffice paths.
//!
//! - its own process group, so one `killpg` takes LibreOffice and everything it started;
//! - `PR_SET_PDEATHSIG`, so the direct child dies with the worker even on `kill -9` (LibreOffice's
//!   launcher forks `soffice.bin`, which that does not reach: the warm path's helper covers it);
//! - an optional address-space cap (`RLIMIT_AS`), so a hostile document cannot eat the host.

use std::os::unix::process::CommandExt as _;

/// Kills a process group when dropped: on success, failure, cancel and timeout alike.
#[derive(Debug)]
pub(crate) struct ProcessGroup(pub(crate) i32);

impl ProcessGroup {
    pub(crate) fn id(&self) -> i32 {
        self.0
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

pub(crate) fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions; ESRCH (already gone) is fine.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// How a child is tied to the worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Isolation {
    /// Process group to join (`0`: a new one led by the child).
    pub group: i32,
    /// Cap of the child's address space, in bytes.
    pub memory_limit: Option<u64>,
    /// Kill the child when the worker dies (`PR_SET_PDEATHSIG`).
    pub die_with_parent: bool,
}

/// Applies `iso` to `cmd` (and kills the child if its handle is dropped).
pub(crate) fn isolate(cmd: &mut tokio::process::Command, iso: Isolation) {
    cmd.process_group(iso.group).kill_on_drop(true);
    let Isolation {
        memory_limit,
        die_with_parent,
        ..
    } = iso;
    let pre_exec = move || {
        // SAFETY: only async-signal-safe libc calls between fork and exec.
        unsafe {
            if die_with_parent {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            }
            if let Some(bytes) = memory_limit {
                let limit = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                libc::setrlimit(libc::RLIMIT_AS, &limit);
            }
        }
        Ok(())
    };
    // SAFETY: the closure above only makes async-signal-safe calls.
    unsafe {
        cmd.as_std_mut().pre_exec(pre_exec);
    }
}

/// Whether a process exists (and is not a zombie we already reaped).
pub(crate) fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Processes in group `pgid`, with their command lines (from `/proc`).
pub fn group_members(pgid: i32) -> Vec<(i32, String)> {
    processes()
        .into_iter()
        .filter(|p| p.1 == pgid)
        .map(|(pid, _, cmd)| (pid, cmd))
        .collect()
}

/// Every process as `(pid, process group, command line)`, from `/proc`.
pub fn processes() -> Vec<(i32, i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the parenthesised command: state, ppid, pgrp, ...
            let after = &stat[stat.rfind(')')? + 2..];
            let pgrp = after.split_whitespace().nth(2)?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            Some((pid, pgrp, cmd))
        })
        .collect()
}
