//! API errors: what was wrong, in words that say what to fix.

use serde::Serialize;

/// The kinds of API error (mediasoup's two request error kinds, plus not-found and the ones a
/// multi-core process adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorKind {
    /// The caller's mistake: a malformed, out-of-range or contradictory argument (HTTP 400).
    InvalidArgument,
    /// No object with that id (HTTP 404).
    NotFound,
    /// The request does not fit the current state (HTTP 409).
    InvalidState,
    /// A core did not confirm within its deadline, or is stalled (HTTP 503).
    CoreUnavailable,
    /// The control plane's queue or a core's ring is full; retry later (HTTP 503).
    Busy,
    /// The call would pass a configured quota (`[quotas]`); nothing changed (HTTP 429).
    QuotaExceeded,
}

/// Which quota a call would pass, and its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaHit {
    pub quota: &'static str,
    pub limit: usize,
}

/// An API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub message: String,
    /// Set when `kind` is `QuotaExceeded`.
    pub quota: Option<QuotaHit>,
}

impl ApiError {
    pub fn argument(message: impl Into<String>) -> Self {
        Self { kind: ApiErrorKind::InvalidArgument, message: message.into(), quota: None }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { kind: ApiErrorKind::NotFound, message: message.into(), quota: None }
    }
    pub fn state(message: impl Into<String>) -> Self {
        Self { kind: ApiErrorKind::InvalidState, message: message.into(), quota: None }
    }
    pub fn core(message: impl Into<String>) -> Self {
        Self { kind: ApiErrorKind::CoreUnavailable, message: message.into(), quota: None }
    }
    pub fn busy(message: impl Into<String>) -> Self {
        Self { kind: ApiErrorKind::Busy, message: message.into(), quota: None }
    }
    pub fn quota(quota: &'static str, limit: usize, message: impl Into<String>) -> Self {
        Self {
            kind: ApiErrorKind::QuotaExceeded,
            message: message.into(),
            quota: Some(QuotaHit { quota, limit }),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for ApiError {}
