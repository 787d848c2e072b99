//! Warm LibreOffice: one long-lived `soffice --accept=pipe,...` per worker slot, driven by a
//! small UNO helper that ships inside the binary (`uno_helper.py`, run with the system Python's
//! `uno` module). A 5-slide deck converts in ~0.15 s warm against ~1.3 s cold.
//!
//! Isolation is kept per slot: each slot has its own hardened profile and process group (the
//! helper joins LibreOffice's group, so one kill takes both). A slot is thrown away — processes
//! killed, profile deleted, a fresh one made from the template on next use — whenever a
//! conversion does not end cleanly: timeout or cancel (the future is dropped mid-conversion),
//! a crash, a document LibreOffice could not load (a poisoned profile was seen to make every
//! later conversion silently produce nothing), and after `restart_after` conversions.
//!
//! Fallbacks: if warm slots cannot start at all (no `python3-uno`, say), conversions go cold
//! for a while; if a document fails to load warm, it is tried once cold with a fresh profile,
//! and the cold result stands. A LibreOffice crash mid-conversion is reported as retryable.
//!
//! Slots record their process group in `<root>/<name>.pgid`; a new pool kills groups whose
//! owning worker died without cleaning up (`kill -9` of the worker leaves `soffice.bin`, which
//! is LibreOffice's launcher's child and not reached by the parent-death signal).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, MutexGuard, Semaphore};
use tokio_util::sync::CancellationToken;

use super::libreoffice::{LibreOffice, file_url, pdf_filter, write_profile};
use super::process::{Isolation, ProcessGroup, alive, group_members, isolate, kill_group};
use super::{Converted, Converter, DocFormat, validate_pdf};
use crate::jobs::JobError;

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
}

/// One warm LibreOffice and its helper.
struct Slot {
    group: ProcessGroup,
    soffice: Child,
    helper: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    conversions: u32,
    profile: PathBuf,
    pidfile: PathBuf,
}

impl Slot {
    fn is_alive(&mut self) -> bool {
        matches!(self.soffice.try_wait(), Ok(None)) && matches!(self.helper.try_wait(), Ok(None))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        kill_group(self.group.id());
        let _ = std::fs::remove_file(&self.pidfile);
        let _ = std::fs::remove_dir_all(&self.profile);
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
    /// LibreOffice died mid-conversion.
    Crashed(String),
    Cancelled,
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

    async fn start_slot(&self) -> Result<Slot, String> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let name = format!("offload-{}-{generation}", std::process::id());
        let profile = self.options.root.join(&name);
        write_profile(&profile).map_err(|e| format!("profile: {e}"))?;
        let binary = self.cold.binary().map_err(|e| e.message)?;
        let mut soffice = Command::new(binary);
        soffice
            .arg(format!("-env:UserInstallation={}", file_url(&profile)))
            .args([
                "--headless",
                "--invisible",
                "--nocrashreport",
                "--nodefault",
            ])
            .args([
                "--nofirststartwizard",
                "--nolockcheck",
                "--nologo",
                "--norestore",
            ])
            .arg(format!(
                "--accept=pipe,name={name};urp;StarOffice.ComponentContext"
            ))
            .env("HOME", &profile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let iso = Isolation {
            group: 0,
            memory_limit: self.cold.memory_limit(),
            die_with_parent: true,
        };
        isolate(&mut soffice, iso);
        let soffice = soffice.spawn().map_err(|e| format!("soffice: {e}"))?;
        let group = ProcessGroup(soffice.id().map(|id| id as i32).unwrap_or(0));
        let pidfile = self.options.root.join(format!("{name}.pgid"));
        let _ = std::fs::write(&pidfile, group.id().to_string());

        let mut helper = Command::new(&self.options.python);
        helper
            .arg(&self.helper)
            .arg(&name)
            .arg(self.options.start_timeout.as_secs().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // No parent-death signal for the helper: it must outlive the worker by a moment, see
        // its stdin close, and kill the group (soffice.bin included, which nothing else reaches).
        let iso = Isolation {
            group: group.id(),
            memory_limit: None,
            die_with_parent: false,
        };
        isolate(&mut helper, iso);
        let mut helper = helper
            .spawn()
            .map_err(|e| format!("{}: {e}", self.options.python))?;
        let stdin = helper.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(helper.stdout.take().expect("piped stdout")).lines();
        let wait = self.options.start_timeout + Duration::from_secs(5);
        let first = tokio::time::timeout(wait, stdout.next_line()).await;
        let slot = Slot {
            group,
            soffice,
            helper,
            stdin,
            stdout,
            conversions: 0,
            profile,
            pidfile,
        };
        match first {
            Ok(Ok(Some(line))) if line.contains("\"ready\"") => Ok(slot),
            Ok(Ok(line)) => Err(format!(
                "the UNO helper did not start (said {line:?}); is python3-uno installed?"
            )),
            Ok(Err(e)) => Err(format!("the UNO helper did not start: {e}")),
            Err(_) => Err(format!(
                "LibreOffice did not accept connections within {wait:?}"
            )),
        }
    }

    async fn convert_warm(
        &self,
        input: &Path,
        format: DocFormat,
        out_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Converted, WarmFailure> {
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
            *guard = Some(self.start_slot().await.map_err(WarmFailure::Unavailable)?);
        }
        let output = out_dir.join("warm-out.pdf");
        let (filter, single_page_sheets) = pdf_filter(format);
        let options = if single_page_sheets {
            serde_json::json!({ "SinglePageSheets": true })
        } else {
            serde_json::json!({})
        };
        let request = serde_json::json!({
            "input": input, "output": &output, "filter": filter, "options": options,
        })
        .to_string()
            + "\n";

        let mut flight = InFlight {
            slot: guard,
            armed: true,
        };
        let slot = flight.slot.as_mut().expect("slot started above");
        let crashed = |e: &dyn std::fmt::Display| {
            WarmFailure::Crashed(format!("LibreOffice stopped during the conversion ({e})"))
        };
        slot.stdin
            .write_all(request.as_bytes())
            .await
            .map_err(|e| crashed(&e))?;
        let line = tokio::select! {
            line = slot.stdout.next_line() => line.map_err(|e| crashed(&e))?,
            () = cancel.cancelled() => return Err(WarmFailure::Cancelled),
        };
        let line = line.ok_or_else(|| crashed(&"the helper exited"))?;
        let answer: HelperAnswer = serde_json::from_str(&line).map_err(|e| crashed(&e))?;
        if !answer.ok {
            let why = answer.error.unwrap_or_default();
            return Err(match answer.stage.as_deref() {
                Some("bridge") => crashed(&why),
                _ => WarmFailure::Document(why),
            });
        }
        slot.conversions += 1;
        flight.armed = slot.conversions >= self.options.restart_after;
        drop(flight);

        let checked = output.clone();
        let pages = tokio::task::spawn_blocking(move || validate_pdf(&checked))
            .await
            .map_err(|e| WarmFailure::Document(e.to_string()))?
            .map_err(WarmFailure::Document)?;
        Ok(Converted {
            path: output,
            pages,
        })
    }
}

#[async_trait::async_trait]
impl Converter for WarmLibreOffice {
    fn availability(&self) -> Result<(), String> {
        self.cold.availability()
    }

    async fn convert(
        &self,
        input: &Path,
        format: DocFormat,
        out_dir: &Path,
        cancel: CancellationToken,
    ) -> Result<Converted, JobError> {
        self.cold.binary()?;
        if self.warm_paused() {
            return self.cold.convert(input, format, out_dir, cancel).await;
        }
        match self.convert_warm(input, format, out_dir, &cancel).await {
            Ok(converted) => Ok(converted),
            Err(WarmFailure::Cancelled) => {
                Err(JobError::fatal("cancelled", "the conversion was cancelled"))
            }
            Err(WarmFailure::Crashed(why)) => Err(JobError::retryable("converter_crashed", why)),
            Err(WarmFailure::Unavailable(why)) => {
                tracing::warn!(%why, "warm LibreOffice unavailable; converting cold for a while");
                self.pause_warm();
                self.cold.convert(input, format, out_dir, cancel).await
            }
            Err(WarmFailure::Document(why)) => {
                tracing::info!(%why, "warm conversion failed; trying once cold with a fresh profile");
                self.cold.convert(input, format, out_dir, cancel).await
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
