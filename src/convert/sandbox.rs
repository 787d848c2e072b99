//! The OS sandbox around every process that opens an uploaded document (LibreOffice, its UNO
//! helper, and any future renderer).
//!
//! A document can point LibreOffice at local files, URLs and `${VARIABLES}` through more
//! loaders than any profile setting reaches, so the boundary is drawn outside LibreOffice, by
//! the kernel. Under [bubblewrap](https://github.com/containers/bubblewrap) the process gets:
//!
//! - **no network**: a network namespace of its own, holding only its own loopback;
//! - **a filesystem of only what conversion needs**: `/usr` read-only (with `/usr/local`
//!   hidden), LibreOffice's and fontconfig's entries of `/etc` and the font cache read-only, a
//!   fresh `/dev` and `/proc` (its own PID namespace: no other process is visible), and the
//!   directories the caller binds — the slot's profile, the job's exchange directory, a scratch
//!   `/tmp`. No `/etc/passwd`, no `/home`, no `/root`, nothing of offload's;
//! - **a cleared environment**: `PATH`, `HOME`, `LANG`, `TMPDIR` and nothing else — never
//!   `DATABASE_URL`, storage credentials, `WEBHOOK_SECRET` or API keys;
//! - **no privileges**: uid/gid 65534 in a user namespace that cannot create further ones, all
//!   capabilities dropped, a session without a terminal (no terminal injection: every command
//!   built here calls `setsid` before it starts bubblewrap), IPC and UTS namespaces;
//! - **its lifetime tied to ours**: `--die-with-parent`, and every process in the PID namespace
//!   dies with its first one, which stays in the caller's process group (the caller's handle):
//!   one `killpg` takes everything inside, at any moment of the sandbox's setup. Not
//!   `--new-session`: with it, bubblewrap moves that first process into a session of its own
//!   before it sets its parent-death signal, and a kill of the group in between (a job
//!   cancelled as LibreOffice starts) left the whole sandbox running.
//!
//! Why bubblewrap rather than Landlock + seccomp from Rust crates: Landlock restricts file
//! access but cannot give the process a private `/proc`, an empty environment for its own
//! children, or (before Linux 6.7, and then only for TCP) take the network away; namespaces do
//! all of it, and bubblewrap is the small, audited, packaged tool that sets them up (Flatpak's).
//!
//! Fail closed: [`Sandbox::new`] tries the sandbox once; if it cannot be made (no bubblewrap, no
//! user namespaces), [`Sandbox::availability`] says why, `/readyz` reports it and conversions
//! fail `converter_unavailable`. Only an explicit `CONVERT_SANDBOX=off` runs without one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Whether conversions run sandboxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Under bubblewrap (the default).
    Bubblewrap,
    /// Unsandboxed: the child only gets a cleared environment. For hosts that cannot create
    /// namespaces, chosen explicitly and logged loudly.
    Off,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bwrap" | "bubblewrap" | "on" => Ok(SandboxMode::Bubblewrap),
            "off" => Ok(SandboxMode::Off),
            other => Err(format!("expected bwrap or off, got {other:?}")),
        }
    }
}

/// How to build the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    /// The `bwrap` binary: a path or a command looked up on `PATH`.
    pub bwrap: String,
}

/// The variables a sandboxed process gets; nothing else of offload's environment passes.
const ENVIRONMENT: [(&str, &str); 4] = [
    ("PATH", "/usr/bin:/bin"),
    ("HOME", "/tmp"),
    ("LANG", "C.UTF-8"),
    ("TMPDIR", "/tmp"),
];

/// Entries of `/etc` LibreOffice needs (its registry and `sofficerc` on Debian, fontconfig,
/// the loader cache). Everything else of `/etc` is absent.
const ETC_ENTRIES: [&str; 3] = ["/etc/libreoffice", "/etc/fonts", "/etc/ld.so.cache"];

/// Size of the sandbox's own `/tmp` (it holds LibreOffice's pipe; scratch files go to `TMPDIR`).
const SMALL_TMPFS_BYTES: &str = "16777216";

/// Read-only beyond `/usr` and `/etc`: fontconfig's cache (without it every cold start
/// rescans every font).
const OTHER_READ_ONLY: [&str; 1] = ["/var/cache/fontconfig"];

/// A path a sandboxed process may use, at the same path inside as outside (so paths in
/// requests, logs and process listings mean the same thing on both sides).
#[derive(Debug, Clone)]
pub struct Bind {
    pub path: PathBuf,
    pub access: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
    /// Read-write, and the sandbox's `TMPDIR` (its own `/tmp` is a small tmpfs, for sockets).
    Tmp,
}

impl Bind {
    pub fn dir(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            access: Access::ReadWrite,
        }
    }

    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            access: Access::ReadOnly,
        }
    }

    pub fn tmp(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            access: Access::Tmp,
        }
    }
}

/// Builds commands that run inside the sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Bubblewrap {
        binary: PathBuf,
        /// The mounts and flags every sandboxed process gets.
        base: Vec<OsString>,
        /// `Err(why)` when the probe could not create a sandbox.
        probe: Result<(), String>,
    },
    Missing(String),
    Off,
}

impl Sandbox {
    /// Prepares the sandbox for `programs` (their installs are made visible read-only when
    /// they live outside `/usr`) and tries it once.
    pub fn new(config: &SandboxConfig, programs: &[&Path]) -> Self {
        let kind = match config.mode {
            SandboxMode::Off => Kind::Off,
            SandboxMode::Bubblewrap => match super::process::resolve_binary(&config.bwrap) {
                None => Kind::Missing(format!(
                    "the converter sandbox cannot be created: bubblewrap ({:?}) is not installed \
                     (apt-get install bubblewrap), or set CONVERT_SANDBOX=off to convert unsandboxed",
                    config.bwrap
                )),
                Some(binary) => {
                    let base = base_args(programs);
                    let probe = probe(&binary, &base);
                    Kind::Bubblewrap {
                        binary,
                        base,
                        probe,
                    }
                }
            },
        };
        Self { kind }
    }

    /// No sandbox at all (`CONVERT_SANDBOX=off`): the child still gets a cleared environment.
    pub fn off() -> Self {
        Self { kind: Kind::Off }
    }

    /// `Err(why)` when conversions cannot run sandboxed here (and so must not run).
    pub fn availability(&self) -> Result<(), String> {
        match &self.kind {
            Kind::Bubblewrap { probe, .. } => probe.clone(),
            Kind::Missing(why) => Err(why.clone()),
            Kind::Off => Ok(()),
        }
    }

    pub fn is_off(&self) -> bool {
        matches!(self.kind, Kind::Off)
    }

    /// A command running `program args…` inside the sandbox, seeing `binds`. Fails (without
    /// running anything) when the sandbox is unavailable.
    pub fn command(
        &self,
        program: &Path,
        binds: &[Bind],
    ) -> Result<tokio::process::Command, String> {
        // Scratch files go to disk, next to the job: not into memory (the sandbox's own /tmp
        // is a small tmpfs, for LibreOffice's pipe) nor, unsandboxed, the machine's /tmp.
        let tmp = binds.iter().find(|b| b.access == Access::Tmp);
        let mut cmd = match &self.kind {
            Kind::Missing(why) => return Err(why.clone()),
            Kind::Bubblewrap {
                probe: Err(why), ..
            } => return Err(why.clone()),
            Kind::Bubblewrap {
                binary,
                base,
                probe: Ok(()),
            } => {
                let mut cmd = tokio::process::Command::new(binary);
                cmd.args(base);
                for bind in binds {
                    let flag = match bind.access {
                        Access::ReadWrite | Access::Tmp => "--bind",
                        Access::ReadOnly => "--ro-bind",
                    };
                    cmd.arg(flag).arg(&bind.path).arg(&bind.path);
                }
                if let Some(tmp) = tmp {
                    cmd.arg("--setenv").arg("TMPDIR").arg(&tmp.path);
                }
                cmd.arg("--").arg(program);
                cmd
            }
            Kind::Off => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.env_clear().envs(ENVIRONMENT);
                if let Some(tmp) = tmp {
                    cmd.env("TMPDIR", &tmp.path).env("HOME", &tmp.path);
                }
                cmd
            }
        };
        if !self.is_off() {
            // bubblewrap itself needs nothing of ours either (the sandbox gets `--setenv`s).
            cmd.env_clear();
        }
        super::process::lead_session(&mut cmd);
        Ok(cmd)
    }
}

/// The flags and mounts every sandboxed process gets.
fn base_args(programs: &[&Path]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&std::ffi::OsStr]| args.extend(items.iter().map(|s| s.into()));
    push(&[
        "--unshare-all".as_ref(),
        "--unshare-user".as_ref(),
        "--disable-userns".as_ref(),
        "--uid".as_ref(),
        "65534".as_ref(),
        "--gid".as_ref(),
        "65534".as_ref(),
        "--hostname".as_ref(),
        "sandbox".as_ref(),
        "--die-with-parent".as_ref(),
        "--cap-drop".as_ref(),
        "ALL".as_ref(),
        "--clearenv".as_ref(),
    ]);
    for (name, value) in ENVIRONMENT {
        push(&["--setenv".as_ref(), name.as_ref(), value.as_ref()]);
    }
    push(&["--ro-bind".as_ref(), "/usr".as_ref(), "/usr".as_ref()]);
    let installs: Vec<PathBuf> = programs.iter().filter_map(|p| install_root(p)).collect();
    if Path::new("/usr/local").is_dir() && !installs.iter().any(|i| i.starts_with("/usr/local")) {
        push(&["--tmpfs".as_ref(), "/usr/local".as_ref()]);
    }
    for install in installs.iter().filter(|i| !i.starts_with("/usr")) {
        push(&["--ro-bind".as_ref(), install.as_ref(), install.as_ref()]);
    }
    // Merged-/usr systems link /bin, /lib, ... into /usr; older ones have real directories.
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let path = Path::new(top);
        if let Ok(target) = std::fs::read_link(path) {
            push(&["--symlink".as_ref(), target.as_ref(), top.as_ref()]);
        } else if path.is_dir() {
            push(&["--ro-bind".as_ref(), top.as_ref(), top.as_ref()]);
        }
    }
    push(&["--tmpfs".as_ref(), "/etc".as_ref()]);
    for entry in ETC_ENTRIES.iter().chain(OTHER_READ_ONLY.iter()) {
        push(&["--ro-bind-try".as_ref(), entry.as_ref(), entry.as_ref()]);
    }
    push(&[
        "--proc".as_ref(),
        "/proc".as_ref(),
        "--dev".as_ref(),
        "/dev".as_ref(),
        "--size".as_ref(),
        SMALL_TMPFS_BYTES.as_ref(),
        "--tmpfs".as_ref(),
        "/tmp".as_ref(),
        "--chdir".as_ref(),
        "/tmp".as_ref(),
    ]);
    args
}

/// Where a program is installed: `/usr` for Debian's packages (`/usr/local`, then kept
/// visible, for a local build), `/opt/<name>` for
/// LibreOffice's own (`/opt/libreoffice7.6/program/soffice`). Anything else is not made
/// visible in the sandbox (a program elsewhere cannot run there; start-up says so).
pub fn install_root(program: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(program).ok()?;
    for root in ["/usr/local", "/usr"] {
        if real.starts_with(root) {
            return Some(PathBuf::from(root));
        }
    }
    let mut parts = real.strip_prefix("/opt").ok()?.components();
    Some(Path::new("/opt").join(parts.next()?))
}

/// Runs `/usr/bin/true` in the sandbox: `Err(why)` when it cannot be created here.
fn probe(binary: &Path, base: &[OsString]) -> Result<(), String> {
    let output = std::process::Command::new(binary)
        .args(base)
        .args(["--", "/usr/bin/true"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    let why = match output {
        Ok(out) if out.status.success() => return Ok(()),
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    Err(format!(
        "the converter sandbox cannot be created ({}: {why}); it needs user namespaces \
         (in a container: a seccomp profile that allows them), or set CONVERT_SANDBOX=off \
         to convert unsandboxed",
        binary.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bubblewrap_fails_closed() {
        let sandbox = Sandbox::new(
            &SandboxConfig {
                mode: SandboxMode::Bubblewrap,
                bwrap: "/nonexistent/bwrap".into(),
            },
            &[],
        );
        let why = sandbox.availability().unwrap_err();
        assert!(why.contains("bubblewrap"), "{why}");
        assert!(sandbox.command(Path::new("/usr/bin/true"), &[]).is_err());
    }

    #[test]
    fn off_still_clears_the_environment() {
        let sandbox = Sandbox::off();
        let cmd = sandbox.command(Path::new("/usr/bin/env"), &[]).unwrap();
        let vars: Vec<_> = cmd.as_std().get_envs().map(|(k, _)| k.to_owned()).collect();
        assert!(vars.iter().any(|k| k == "PATH"));
        assert!(!vars.iter().any(|k| k == "DATABASE_URL"));
    }
}
