//! Child-process isolation shared by the cold and warm LibreOffice paths.
//!
//! - its own session and process group ([`lead_session`], which `Sandbox::command` applies to
//!   every command it builds), so one `killpg` takes LibreOffice and everything it started —
//!   inside a sandbox, bubblewrap's own processes too (which is why the sandbox does not ask
//!   bubblewrap for a session: see `sandbox`);
//! - `PR_SET_PDEATHSIG`, so the direct child dies with the worker even on `kill -9` (LibreOffice's
//!   launcher forks `soffice.bin`, which that does not reach: the warm path's helper covers it);
//! - an optional address-space cap (`RLIMIT_AS`), so a hostile document cannot eat the host;
//! - an optional CPU-time cap (`RLIMIT_CPU`), the kernel's backstop behind [`CpuBudget`], which
//!   stops a document whose layout never converges after its CPU budget rather than its
//!   wall-clock timeout.

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

/// How a child is tied to the worker. Its command comes from `Sandbox::command`, so the child
/// leads a session and a process group of its own, whose id is its pid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Isolation {
    /// Cap of the child's address space, in bytes.
    pub memory_limit: Option<u64>,
    /// Kill the child when the worker dies (`PR_SET_PDEATHSIG`).
    pub die_with_parent: bool,
    /// CPU seconds each process of the child may use (`RLIMIT_CPU`, inherited).
    pub cpu_limit: Option<u64>,
}

/// Makes `cmd`'s child lead a new session, and so a process group whose id is its pid, with
/// no controlling terminal (nothing it starts can inject keystrokes into ours). Every command
/// `Sandbox::command` builds gets it, so every child this service starts.
pub(crate) fn lead_session(cmd: &mut tokio::process::Command) {
    let pre_exec = || {
        // SAFETY: setsid is async-signal-safe. It refuses a process that already leads a
        // group, so the command must not also ask for `process_group(0)`.
        if unsafe { libc::setsid() } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure above only makes async-signal-safe calls.
    unsafe {
        cmd.as_std_mut().pre_exec(pre_exec);
    }
}

/// Applies `iso` to `cmd` (and kills the child if its handle is dropped).
pub(crate) fn isolate(cmd: &mut tokio::process::Command, iso: Isolation) {
    cmd.kill_on_drop(true);
    let Isolation {
        memory_limit,
        die_with_parent,
        cpu_limit,
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
            if let Some(secs) = cpu_limit {
                let limit = libc::rlimit {
                    rlim_cur: secs as libc::rlim_t,
                    rlim_max: secs as libc::rlim_t,
                };
                libc::setrlimit(libc::RLIMIT_CPU, &limit);
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

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy)]
struct Stat {
    pid: i32,
    /// `R`, `S`, … `Z` (a zombie), `X` (dead).
    state: char,
    ppid: i32,
    pgrp: i32,
    /// User + system CPU time, in clock ticks.
    ticks: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command: state(3) ppid(4) pgrp(5) … utime(14) stime(15).
    let after: Vec<&str> = text[text.rfind(')')? + 2..].split_whitespace().collect();
    let field = |n: usize| after.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        pid,
        state: after.first()?.chars().next()?,
        ppid: i32::try_from(field(4)?).ok()?,
        pgrp: i32::try_from(field(5)?).ok()?,
        ticks: field(14)? + field(15)?,
    })
}

impl Stat {
    /// Not a zombie (nor dead): it still runs, or can.
    fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// A process's command line, its arguments joined by spaces.
fn cmdline(pid: i32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&bytes).replace('\0', " "))
}

fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// `root` and every process below it (children, their children, …), from `/proc`.
pub fn descendants(root: i32) -> Vec<i32> {
    let stats: Vec<Stat> = all_pids().into_iter().filter_map(stat).collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(stats.iter().filter(|s| s.ppid == parent).map(|s| s.pid));
        i += 1;
    }
    tree
}

fn ticks_to_duration(ticks: u64) -> std::time::Duration {
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    std::time::Duration::from_millis(ticks * 1000 / per_sec)
}

/// CPU time used so far by `root` and the processes below it that are alive.
pub fn tree_cpu(root: i32) -> std::time::Duration {
    let ticks = descendants(root)
        .into_iter()
        .filter_map(stat)
        .map(|s| s.ticks)
        .sum();
    ticks_to_duration(ticks)
}

/// A CPU budget for one conversion by a process tree: the tree's CPU time is sampled while
/// the conversion runs, and [`CpuBudget::exceeded`] says when it has used more than its share
/// since [`CpuBudget::start`]. Sampling (not only `RLIMIT_CPU`) is what lets a warm
/// LibreOffice, whose CPU time accumulates over many documents, get a budget per document, and
/// what tells a spent budget apart from any other crash.
#[derive(Debug, Clone, Copy)]
pub struct CpuBudget {
    root: i32,
    limit: std::time::Duration,
    start: std::time::Duration,
}

impl CpuBudget {
    pub fn start(root: i32, limit: std::time::Duration) -> Self {
        Self {
            root,
            limit,
            start: tree_cpu(root),
        }
    }

    /// `Some(used)` once the tree has used more than its budget since the start.
    pub fn exceeded(&self) -> Option<std::time::Duration> {
        let used = tree_cpu(self.root).saturating_sub(self.start);
        (used > self.limit).then_some(used)
    }

    pub fn limit(&self) -> std::time::Duration {
        self.limit
    }

    /// Sets the kernel's backstop on every process of the tree: `RLIMIT_CPU` (soft) a little
    /// past the budget, or removed (`None`). The soft limit only, because raising a hard limit
    /// again needs privileges a worker may not have.
    pub fn set_kernel_limit(&self, budget: Option<std::time::Duration>) {
        for pid in descendants(self.root) {
            let Some(st) = stat(pid) else { continue };
            let soft = match budget {
                Some(b) => {
                    ticks_to_duration(st.ticks).as_secs() + b.as_secs() + KERNEL_LIMIT_SLACK_SECS
                }
                None => libc::RLIM_INFINITY,
            };
            set_soft_cpu_limit(pid, soft);
        }
    }
}

/// How often a running conversion's CPU time is sampled against its budget.
const CPU_SAMPLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Completes once `budget` is spent (never, without one), with the CPU time used.
pub(crate) async fn spent(budget: Option<CpuBudget>) -> std::time::Duration {
    let Some(budget) = budget else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(CPU_SAMPLE);
    loop {
        tick.tick().await;
        if let Some(used) = budget.exceeded() {
            return used;
        }
    }
}

/// How far past the budget the kernel's `RLIMIT_CPU` sits: sampling notices first and can say
/// why; the kernel only stops what sampling missed.
pub(crate) const KERNEL_LIMIT_SLACK_SECS: u64 = 2;

fn set_soft_cpu_limit(pid: i32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with a null new limit only reads into `old`.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_CPU, std::ptr::null(), &mut old) } != 0 {
        return;
    }
    let new = libc::rlimit {
        rlim_cur: (soft as libc::rlim_t).min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: plain prlimit on a pid; failure (the process is gone) is fine.
    unsafe {
        libc::prlimit(pid, libc::RLIMIT_CPU, &new, std::ptr::null_mut());
    }
}

/// Processes in group `pgid`, with their command lines (from `/proc`).
pub fn group_members(pgid: i32) -> Vec<(i32, String)> {
    processes()
        .into_iter()
        .filter(|p| p.1 == pgid)
        .map(|(pid, _, cmd)| (pid, cmd))
        .collect()
}

/// Every live process (not a zombie) as `(pid, process group, command line)`, from `/proc`.
pub fn processes() -> Vec<(i32, i32, String)> {
    all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, stat(pid)?, cmdline(pid)?)))
        .filter(|(_, stat, _)| stat.is_live())
        .map(|(pid, stat, cmd)| (pid, stat.pgrp, cmd))
        .collect()
}

/// A command name looked up on `PATH`, or a path that must exist.
pub fn resolve_binary(cmd: &str) -> Option<std::path::PathBuf> {
    if cmd.contains('/') {
        let path = std::path::PathBuf::from(cmd);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(cmd))
        .find(|p| p.is_file())
}

/// Limits of each converter process (LibreOffice, the page renderers).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessLimits {
    /// Address-space cap, in bytes (`RLIMIT_AS`).
    pub memory: Option<u64>,
    /// CPU time one conversion may use; past it the document is "too complex".
    pub cpu: Option<std::time::Duration>,
}

/// How an isolated child ended.
pub(crate) enum Ended {
    Exited(std::process::Output),
    /// `cancel` fired first.
    Cancelled,
    /// It used up its CPU budget (this much).
    OverBudget(std::time::Duration),
}

/// Runs `cmd` in a process group of its own within `limits` (address space, CPU seconds,
/// killed with the worker) until it exits, `cancel` fires or its CPU budget runs out; the
/// group is killed on every way out. `Err` only when it cannot start.
pub(crate) async fn run_isolated(
    mut cmd: tokio::process::Command,
    limits: ProcessLimits,
    cancel: &tokio_util::sync::CancellationToken,
) -> std::io::Result<Ended> {
    let iso = Isolation {
        memory_limit: limits.memory,
        die_with_parent: true,
        cpu_limit: limits.cpu.map(|c| c.as_secs() + KERNEL_LIMIT_SLACK_SECS),
    };
    isolate(&mut cmd, iso);
    let child = cmd.spawn()?;
    let pid = child.id().map(|id| id as i32).unwrap_or(0);
    let _group = ProcessGroup(pid);
    Ok(tokio::select! {
        output = child.wait_with_output() => Ended::Exited(output?),
        () = cancel.cancelled() => Ended::Cancelled,
        used = spent(limits.cpu.map(|limit| CpuBudget::start(pid, limit))) => Ended::OverBudget(used),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::convert::sandbox::{Sandbox, SandboxConfig, SandboxMode};

    /// Polls `/proc` (a process's birth or death is no event this test can await).
    async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A cancel kills the child's process group and nothing else; so everything the sandbox
    /// runs must be in that group from its first moment. With bubblewrap's `--new-session`,
    /// its init and the program left the group, and a cancel landing before the init armed its
    /// parent-death signal left a cancelled job's LibreOffice running.
    #[tokio::test]
    async fn everything_a_sandboxed_child_runs_is_in_the_group_a_cancel_kills() {
        let config = SandboxConfig {
            mode: SandboxMode::Bubblewrap,
            bwrap: "bwrap".into(),
        };
        let sleep = Path::new("/usr/bin/sleep");
        let sandbox = Sandbox::new(&config, &[sleep]);
        sandbox
            .availability()
            .expect("bubblewrap makes a sandbox here (scripts/test installs it)");
        let marker = format!("600.{}", std::process::id());
        let mut cmd = sandbox.command(sleep, &[]).unwrap();
        cmd.arg(&marker);
        let cancel = tokio_util::sync::CancellationToken::new();
        let run = tokio::spawn({
            let cancel = cancel.clone();
            async move { run_isolated(cmd, ProcessLimits::default(), &cancel).await }
        });
        let ours = std::process::id() as i32;
        let root = until("bubblewrap never started", || {
            all_pids().into_iter().find(|&pid| {
                stat(pid).is_some_and(|s| s.ppid == ours)
                    && cmdline(pid).is_some_and(|c| c.contains(&marker))
            })
        })
        .await;
        let tree = until("the sandboxed program never started", || {
            let tree = descendants(root);
            let program = format!("{} {marker}", sleep.display());
            let started = tree
                .iter()
                .any(|&pid| cmdline(pid).is_some_and(|c| c.starts_with(&program)));
            started.then_some(tree)
        })
        .await;
        assert!(
            tree.len() >= 3,
            "bubblewrap, its init, the program: {tree:?}"
        );
        for &pid in &tree {
            let group = stat(pid).map(|s| s.pgrp);
            assert_eq!(
                group,
                Some(root),
                "{pid} ({:?}) in the child's group",
                cmdline(pid)
            );
        }
        cancel.cancel();
        assert!(matches!(run.await.unwrap().unwrap(), Ended::Cancelled));
        until("a process of the cancelled group is still alive", || {
            let alive = all_pids()
                .into_iter()
                .filter_map(stat)
                .any(|s| s.pgrp == root && s.is_live());
            (!alive).then_some(())
        })
        .await;
    }
}
