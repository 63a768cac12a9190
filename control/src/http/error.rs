//! HTTP errors: a status and the body `{"error": "...", "kind": "..."}`, plus `"quota"` and
//! `"limit"` on a 429 `quota_exceeded` (`control/API.md`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use serde::Serialize;

use crate::error::{ApiError, ApiErrorKind, QuotaHit};

/// An HTTP error: status + `{"error", "kind"}`.
#[derive(Debug)]
pub struct HttpError {
    pub(super) status: StatusCode,
    pub(super) kind: &'static str,
    pub(super) message: String,
    pub(super) quota: Option<QuotaHit>,
}

impl HttpError {
    pub(super) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), quota: None }
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        let (status, kind) = match e.kind {
            ApiErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
            ApiErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiErrorKind::InvalidState => (StatusCode::CONFLICT, "invalid_state"),
            ApiErrorKind::CoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "core_unavailable"),
            // API-SPEC.md has four kinds: a full ring or queue is a core that cannot take the
            // call now (the message says "busy").
            ApiErrorKind::Busy => (StatusCode::SERVICE_UNAVAILABLE, "core_unavailable"),
            ApiErrorKind::QuotaExceeded => (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
        };
        HttpError { quota: e.quota, ..HttpError::new(status, kind, e.message) }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize)]
pub(super) struct ErrorBody {
    pub(super) error: String,
    pub(super) kind: &'static str,
    /// The quota's name, on `quota_exceeded` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) quota: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) limit: Option<usize>,
}

impl HttpError {
    pub(super) fn body(self) -> ErrorBody {
        ErrorBody {
            error: self.message,
            kind: self.kind,
            quota: self.quota.map(|q| q.quota),
            limit: self.quota.map(|q| q.limit),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> HttpResponse {
        (self.status, Json(self.body())).into_response()
    }
}

pub(super) fn missing(field: &str) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, "invalid_argument", format!("missing field `{field}`"))
}
