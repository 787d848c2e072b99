//! Job error codes: the `error.code` of a job (and of each of its `attempt_errors`). Stable and
//! snake_case: clients branch on them, new ones may be added, none is renamed. Each is a
//! constant here, and [`BUILTIN`] lists them for the OpenAPI document's enum; a kind an
//! embedding application registers declares its own in `JobKind::ERROR_CODES`.

/// A job error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(&'static str);

impl ErrorCode {
    /// A code of an embedding application's kind (built-in codes are the constants below).
    pub const fn new(code: &'static str) -> Self {
        Self(code)
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl From<&'static str> for ErrorCode {
    fn from(code: &'static str) -> Self {
        Self(code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        $($(#[$doc])* pub const $name: ErrorCode = ErrorCode($code);)*
        /// Every code of the runner and the built-in kinds.
        pub const BUILTIN: &[ErrorCode] = &[$($name),*];
    };
}

codes! {
    /// An unexpected failure (database, storage): retried.
    INTERNAL = "internal",
    /// The stored arguments do not parse (or an export's format is unknown).
    INVALID_ARGUMENTS = "invalid_arguments",
    /// No worker here knows the job's kind.
    UNKNOWN_KIND = "unknown_kind",
    /// Every attempt was used (the last ones lost to crashes).
    ATTEMPTS_EXHAUSTED = "attempts_exhausted",
    /// The attempt passed its kind's time limit: retried.
    TIMEOUT = "timeout",
    /// Object storage did not answer: retried.
    STORAGE_UNAVAILABLE = "storage_unavailable",
    /// The worker could not make a scratch directory: retried.
    SCRATCH_UNAVAILABLE = "scratch_unavailable",
    /// The attempt lost its claim on the job (cancelled, deleted, taken over).
    LEASE_LOST = "lease_lost",
    /// A file the job needs (its input, a part's result) is gone.
    MISSING_INPUT = "missing_input",
    /// The document is not of a type offload converts.
    UNSUPPORTED_TYPE = "unsupported_type",
    /// The document is damaged or incomplete.
    DOCUMENT_CORRUPT = "document_corrupt",
    /// The document is protected in a way offload cannot open, even with its password
    /// (rights management, a password-protected `.ppt`).
    DOCUMENT_ENCRYPTED = "document_encrypted",
    /// The document is password-protected and no `password` was sent (or it was wiped when an
    /// earlier run of the job ended).
    PASSWORD_REQUIRED = "password_required",
    /// The `password` sent does not open the document.
    PASSWORD_INCORRECT = "password_incorrect",
    /// The package is beyond the limits (parts, expanded size, ratio, XML depth).
    DOCUMENT_TOO_LARGE = "document_too_large",
    /// The layout did not finish within its CPU budget, or timed out twice.
    DOCUMENT_TOO_COMPLEX = "document_too_complex",
    /// LibreOffice (or its sandbox) cannot run on this worker.
    CONVERTER_UNAVAILABLE = "converter_unavailable",
    /// LibreOffice could not convert the document.
    CONVERSION_FAILED = "conversion_failed",
    /// LibreOffice died mid-conversion: retried.
    CONVERTER_CRASHED = "converter_crashed",
    /// The job was cancelled while it ran.
    CANCELLED = "cancelled",
    /// `sleep`'s `fail_times`: a failure on purpose.
    PLANNED_FAILURE = "planned_failure",
}

/// An attempt whose worker stopped (crash, kill, shutdown) before it finished. Only ever in a
/// job's `attempt_errors`, never its final `error`, so not among [`BUILTIN`].
pub const WORKER_LOST: ErrorCode = ErrorCode("worker_lost");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for code in BUILTIN {
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
    }
}
