//! Warm LibreOffice: one long-lived `soffice --accept=pipe,...` per worker slot, driven by a
//! small UNO helper that ships inside the binary (`uno_helper.py`, run with the system Python's
//! `uno` module). A 5-slide deck converts in ~0.15 s warm against ~1.3 s cold.
//!
//! Each slot is one [`Sandbox`](super::sandbox::Sandbox): the helper starts inside it and launches LibreOffice as its
//! own child there, and the two talk over LibreOffice's named pipe (a Unix socket in the
//! sandbox's private `/tmp`) — no TCP, and the sandbox has no network to offer one. The worker
//! talks to the helper over its stdin/stdout. The sandbox sees the slot's profile, the slot's
//! exchange directory (which holds exactly the one document being converted, placed there
//! before and cleared after each conversion) and its own `/tmp`; nothing else of the worker.
//!
//! Isolation is kept per slot: each slot has its own hardened profile and process group. A slot
//! is thrown away — processes killed, profile deleted, a fresh one made from the template on
//! next use — whenever a conversion does not end cleanly: timeout or cancel (the future is
//! dropped mid-conversion), a crash, a spent CPU budget, a document LibreOffice could not load
//! (a poisoned profile was seen to make every later conversion silently produce nothing), and
//! after `restart_after` conversions.
//!
//! CPU budget: a warm LibreOffice's CPU time accumulates over many documents, so each
//! conversion samples the slot's CPU time against its own budget and sets the kernel's
//! `RLIMIT_CPU` just past it for the duration (see [`CpuBudget`]).
//!
//! Fallbacks: if warm slots cannot start at all (no `python3-uno`, say), conversions go cold
//! (sandboxed the same way) for a while; if a document fails to load warm, it is tried once
//! cold with a fresh profile, and the cold result stands. A LibreOffice crash mid-conversion is
//! reported as retryable. Nothing falls back to running unsandboxed.
//!
//! Slots record their process group in `<root>/<name>.pgid`; a new pool kills groups whose
//! owning worker died without cleaning up (with `CONVERT_SANDBOX=off`, a `kill -9` of the
//! worker leaves `soffice.bin` behind; in the sandbox `--die-with-parent` already took it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{Mutex, MutexGuard, Semaphore};
use tokio_util::sync::CancellationToken;

use super::libreoffice::{
    LibreOffice, SOFFICE_FLAGS, SandboxDirs, command_line_can, file_url, filter_options, finished,
    office_filter, pdf_filter, too_complex, written_extension, written_file,
};
use super::process::{
    CpuBudget, Isolation, ProcessGroup, alive, group_members, isolate, kill_group, spent,
};
use super::sandbox::Bind;
use super::{Conversion, ConvertError, Converted, Converter, place_input, take_output};

const HELPER_SOURCE: &str = include_str!("uno_helper.py");
/// After warm slots fail to start, convert cold for this long before trying warm again.
const WARM_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How the warm pool runs.
#[derive(Debug, Clone)]
pub struct WarmOptions {
    /// LibreOffice instances kept warm (one per concurrent conversion).
    pub slots: usize,
    /// Conversions before an instance is replaced by a fresh one.
    pub restart_after: u32,
    /// A Python with LibreOffice's `uno` module.
    pub python: String,
    /// Where profiles, the helper and pid files live.
    pub root: PathBuf,
    /// Longest wait for a new instance to accept connections.
    pub start_timeout: Duration,
    /// Convert on the command line (one LibreOffice per document) whenever it can do what is
    /// asked; instances over UNO only for what it cannot (passwords, landscape).
    pub cold_first: bool,
}

/// One warm LibreOffice and its helper, in one sandbox.
struct Slot {
    group: ProcessGroup,
    /// The sandbox (or, unsandboxed, the helper itself).
    process: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    conversions: u32,
    root: PathBuf,
    dirs: SandboxDirs,
    pidfile: PathBuf,
}

impl Slot {
    fn is_alive(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }

    /// Empties the exchange directory: it only ever holds the document being converted. (The
    /// directory itself stays: the sandbox has it bind-mounted.)
    fn clear_exchange(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dirs.exchange) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        kill_group(self.group.id());
        let _ = std::fs::remove_file(&self.pidfile);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A slot in use. Dropped while `armed` (the conversion did not finish cleanly: timeout,
/// cancel, error), it throws the slot away.
struct InFlight<'a> {
    slot: MutexGuard<'a, Option<Slot>>,
    armed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            *self.slot = None;
        }
    }
}

#[derive(Debug, Deserialize)]
struct HelperAnswer {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    stage: Option<String>,
}

/// Why a warm conversion did not produce a PDF.
#[derive(Debug)]
enum WarmFailure {
    /// Warm slots cannot run here; convert cold.
    Unavailable(String),
    /// This document did not load or export warm; try it cold with a fresh profile.
    Document(String),
    /// Anything else ends the conversion as it is (a crash, a spent CPU budget, cancel, I/O).
    Final(ConvertError),
}

impl From<ConvertError> for WarmFailure {
    fn from(e: ConvertError) -> Self {
        WarmFailure::Final(e)
    }
}

/// The warm converter, with the cold one as its fallback.
pub struct WarmLibreOffice {
    cold: LibreOffice,
    options: WarmOptions,
    helper: PathBuf,
    slots: Vec<Mutex<Option<Slot>>>,
    permits: Semaphore,
    generation: AtomicU64,
    cold_until: StdMutex<Option<Instant>>,
}

impl WarmLibreOffice {
    pub fn new(cold: LibreOffice, options: WarmOptions) -> std::io::Result<Self> {
        std::fs::create_dir_all(&options.root)?;
        reap_stale_slots(&options.root);
        let helper = options
            .root
            .join(format!("uno_helper-{}.py", std::process::id()));
        std::fs::write(&helper, HELPER_SOURCE)?;
        let slots = (0..options.slots.max(1))
            .map(|_| Mutex::new(None))
            .collect();
        Ok(Self {
            permits: Semaphore::new(options.slots.max(1)),
            cold,
            options,
            helper,
            slots,
            generation: AtomicU64::new(0),
            cold_until: StdMutex::new(None),
        })
    }

    fn warm_paused(&self) -> bool {
        let until = self.cold_until.lock().expect("cold_until lock");
        until.is_some_and(|t| Instant::now() < t)
    }

    fn pause_warm(&self) {
        *self.cold_until.lock().expect("cold_until lock") = Some(Instant::now() + WARM_RETRY_AFTER);
    }

    async fn lock_free_slot(&self) -> MutexGuard<'_, Option<Slot>> {
        // The caller holds a permit, so one of the slots is free or about to be.
        loop {
            if let Some(guard) = self.slots.iter().find_map(|s| s.try_lock().ok()) {
                return guard;
            }
            tokio::task::yield_now().await;
        }
    }

    async fn start_slot(&self) -> Result<Slot, WarmFailure> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let name = format!("offload-{}-{generation}", std::process::id());
        let root = self.options.root.join(&name);
        let dirs = SandboxDirs::create(&root).map_err(ConvertError::io)?;
        let soffice = self.cold.binary()?;
        let mut binds = dirs.binds().to_vec();
        binds.push(Bind::read_only(&self.helper));
        let mut cmd = self
            .cold
            .sandbox()
            .command(Path::new(&self.options.python), &binds)
            .map_err(ConvertError::Unavailable)?;
        // The helper launches LibreOffice itself, inside the sandbox, with these arguments.
        cmd.arg(&self.helper)
            .arg(&name)
            .arg(self.options.start_timeout.as_secs().to_string())
            .arg("--")
            .arg(soffice)
            .arg(format!("-env:UserInstallation={}", file_url(&dirs.profile)))
            .args(SOFFICE_FLAGS)
            .arg(format!(
                "--accept=pipe,name={name};urp;StarOffice.ComponentContext"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // No parent-death signal for the helper: unsandboxed, it must outlive the worker by a
        // moment, see its stdin close, and kill its group (LibreOffice included). Sandboxed,
        // bubblewrap's `--die-with-parent` takes everything at once.
        let iso = Isolation {
            memory_limit: self.cold.limits().memory,
            die_with_parent: false,
            cpu_limit: None,
        };
        isolate(&mut cmd, iso);
        let mut process = cmd
            .spawn()
            .map_err(|e| WarmFailure::Unavailable(format!("{}: {e}", self.options.python)))?;
        let group = ProcessGroup(process.id().map(|id| id as i32).unwrap_or(0));
        let pidfile = self.options.root.join(format!("{name}.pgid"));
        let _ = std::fs::write(&pidfile, group.id().to_string());
        let stdin = process.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(process.stdout.take().expect("piped stdout")).lines();
        let wait = self.options.start_timeout + Duration::from_secs(5);
        let first = tokio::time::timeout(wait, stdout.next_line()).await;
        let slot = Slot {
            group,
            process,
            stdin,
            stdout,
            conversions: 0,
            root,
            dirs,
            pidfile,
        };
        match first {
            Ok(Ok(Some(line))) if line.contains("\"ready\"") => Ok(slot),
            Ok(Ok(line)) => Err(WarmFailure::Unavailable(format!(
                "the UNO helper did not start (said {line:?}); is python3-uno installed?"
            ))),
            Ok(Err(e)) => Err(WarmFailure::Unavailable(format!(
                "the UNO helper did not start: {e}"
            ))),
            Err(_) => Err(WarmFailure::Unavailable(format!(
                "LibreOffice did not accept connections within {wait:?}"
            ))),
        }
    }

    async fn convert_warm(
        &self,
        job: &Conversion<'_>,
        cancel: &CancellationToken,
    ) -> Result<Converted, WarmFailure> {
        let (input, format, out_dir) = (job.input, job.format, job.out_dir);
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut guard = self.lock_free_slot().await;
        // A LibreOffice that died while idle is replaced before it can fail a job.
        if guard.as_mut().is_some_and(|slot| !slot.is_alive()) {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some(self.start_slot().await?);
        }
        let mut flight = InFlight {
            slot: guard,
            armed: true,
        };
        let slot = flight.slot.as_mut().expect("slot started above");
        slot.clear_exchange();
        let placed = place_input(
            input,
            &slot.dirs.exchange,
            &format!("input.{}", format.extension()),
        )?;
        let ext = written_extension(job);
        let written = slot.dirs.exchange.join(format!("output.{ext}"));
        let (filter, options, filter_options) = match &job.office {
            None => (pdf_filter(format), job.settings.helper_json(), None),
            Some(office) => (
                office_filter(office.format),
                serde_json::json!({}),
                filter_options(office),
            ),
        };
        // The request carries the password, if any: it goes down the helper's stdin and nowhere
        // else, and the line is wiped once written.
        let request = zeroize::Zeroizing::new(
            serde_json::json!({
                "input": &placed,
                "output": &written,
                "filter": filter,
                "options": options,
                "filter_options": filter_options,
                "landscape": job.settings.landscape,
                "password": job.password.map(|p| p.expose()),
            })
            .to_string()
                + "\n",
        );

        let crashed = |e: &dyn std::fmt::Display| {
            WarmFailure::Final(ConvertError::Crashed(format!(
                "LibreOffice stopped during the conversion ({e})"
            )))
        };
        let root_pid = slot.group.id();
        let budget = self
            .cold
            .limits()
            .cpu
            .map(|limit| CpuBudget::start(root_pid, limit));
        if let Some(budget) = &budget {
            budget.set_kernel_limit(Some(budget.limit()));
        }
        slot.stdin
            .write_all(request.as_bytes())
            .await
            .map_err(|e| crashed(&e))?;
        let line = tokio::select! {
            line = slot.stdout.next_line() => line.map_err(|e| crashed(&e))?,
            () = cancel.cancelled() => return Err(ConvertError::Cancelled.into()),
            used = spent(budget) => return Err(too_complex(used).into()),
        };
        let line = line.ok_or_else(|| crashed(&"the helper exited"))?;
        let answer: HelperAnswer = serde_json::from_str(&line).map_err(|e| crashed(&e))?;
        if !answer.ok {
            let why = answer.error.unwrap_or_default();
            return Err(match answer.stage.as_deref() {
                Some("bridge") => crashed(&why),
                Some("password") => WarmFailure::Final(ConvertError::PasswordIncorrect(
                    "the password does not open the document".into(),
                )),
                _ => WarmFailure::Document(why),
            });
        }
        if let Some(budget) = &budget {
            budget.set_kernel_limit(None);
        }
        let output = out_dir.join(format!("output.{ext}"));
        let taken = take_output(&written_file(&written), &output);
        slot.clear_exchange();
        taken?;
        slot.conversions += 1;
        flight.armed = slot.conversions >= self.options.restart_after;
        drop(flight);
        finished(job, output)
            .await
            .map_err(|e| WarmFailure::Document(e.to_string()))
    }
}

#[async_trait::async_trait]
impl Converter for WarmLibreOffice {
    fn availability(&self) -> Result<(), String> {
        self.cold.availability()
    }

    async fn version(&self) -> Option<String> {
        self.cold.version().await
    }

    async fn convert(
        &self,
        job: &Conversion<'_>,
        cancel: CancellationToken,
    ) -> Result<Converted, ConvertError> {
        self.cold.binary()?;
        self.cold
            .sandbox()
            .availability()
            .map_err(ConvertError::Unavailable)?;
        let on_command_line = command_line_can(job).is_ok();
        if self.warm_paused() || (self.options.cold_first && on_command_line) {
            return self.cold.convert(job, cancel).await;
        }
        match self.convert_warm(job, &cancel).await {
            Ok(converted) => Ok(converted),
            Err(WarmFailure::Final(e)) => Err(e),
            Err(WarmFailure::Unavailable(why)) => {
                tracing::warn!(%why, "warm LibreOffice unavailable; converting cold for a while");
                self.pause_warm();
                self.cold.convert(job, cancel).await
            }
            Err(WarmFailure::Document(why)) if on_command_line => {
                tracing::info!(%why, "warm conversion failed; trying once cold with a fresh profile");
                self.cold.convert(job, cancel).await
            }
            Err(WarmFailure::Document(why)) => {
                // The command line cannot do this one: a fresh instance (the failed one was
                // thrown away) gets the second try instead.
                tracing::info!(%why, "warm conversion failed; trying once on a fresh LibreOffice");
                match self.convert_warm(job, &cancel).await {
                    Ok(converted) => Ok(converted),
                    Err(WarmFailure::Final(e)) => Err(e),
                    Err(WarmFailure::Unavailable(why) | WarmFailure::Document(why)) => {
                        Err(ConvertError::Rejected(format!(
                            "LibreOffice could not convert the document: {why}"
                        )))
                    }
                }
            }
        }
    }
}

/// Kills LibreOffice groups left by workers that died without cleaning up.
fn reap_stale_slots(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".pgid") else {
            continue;
        };
        let owner: i32 = stem
            .split('-')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if owner == std::process::id() as i32 || alive(owner) {
            continue;
        }
        // The group's leader (LibreOffice's launcher) may be gone while soffice.bin lives on.
        if let Some(pgid) = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            && group_members(pgid)
                .iter()
                .any(|(_, cmd)| cmd.contains("soffice"))
        {
            kill_group(pgid);
        }
        let _ = std::fs::remove_file(entry.path());
        let _ = std::fs::remove_dir_all(root.join(stem));
    }
}
