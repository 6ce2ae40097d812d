//! Why an upstream did not answer, and the problem the client gets for it, once for both
//! transports (and counted, when it is the upstream's failure).

use crate::model::Route;
use kit::ApiError;

/// Why an upstream did not answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No endpoint took the connection (stopped, refused, unreachable).
    #[error("{0} is unavailable")]
    Unavailable(String),
    /// It took the request but did not answer in time.
    #[error("{0} did not answer in time")]
    Timeout(String),
    /// The request body broke the route's size limit while streaming.
    #[error("request body too large")]
    BodyTooLarge,
    /// The client's own body broke (a malformed chunk, a connection cut mid-body): the
    /// client's fault, not the upstream's.
    #[error("the request body was malformed or cut short")]
    ClientBody,
    /// The connection broke mid-request, or the answer's head was broken.
    #[error("{0} failed: {1}")]
    Broken(String, String),
}

impl Failure {
    /// The problem the client is answered with (and the failure counted).
    pub(crate) fn problem(self, route: &Route) -> ApiError {
        if let Some(kind) = self.upstream_kind() {
            metrics::counter!("gateway_upstream_failures_total", "upstream" => route.upstream.clone(), "kind" => kind)
                .increment(1);
        }
        match self {
            Failure::Unavailable(name) => ApiError::Unavailable(format!("the {name} service is unavailable")),
            Failure::Timeout(name) => ApiError::GatewayTimeout(format!("the {name} service did not answer in time")),
            Failure::BodyTooLarge => ApiError::PayloadTooLarge,
            Failure::ClientBody => ApiError::BadRequest("the request body was malformed or cut short".into()),
            Failure::Broken(name, detail) => {
                tracing::warn!(upstream = %name, error = %detail, "upstream failed mid-request");
                ApiError::BadGateway(format!("the {name} service failed"))
            }
        }
    }

    /// The upstream's failures by kind; a client's oversized or broken body is the
    /// client's failure, not counted against the upstream.
    fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            Failure::Unavailable(_) => Some("unavailable"),
            Failure::Timeout(_) => Some("timeout"),
            Failure::Broken(..) => Some("broken"),
            Failure::BodyTooLarge | Failure::ClientBody => None,
        }
    }
}
