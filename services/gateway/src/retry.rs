//! The retry rule, once for both transports: when a request may go to the upstream again,
//! on another connection or another endpoint. A request that may have been acted on is
//! never sent twice unless sending it twice is harmless.

/// Whether a request may be sent again after a try that may have reached the upstream:
/// only a bodiless one of an idempotent method (RFC 9110, section 9.2.2), since nothing
/// of a body already streamed is left to send again.
pub(crate) fn replayable(method: &str, bodiless: bool) -> bool {
    bodiless && matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
}

/// How one try on an upstream connection failed, as far as the rule cares.
#[derive(Debug)]
pub(crate) enum Tried<E> {
    /// The connection refused the request before a byte of it went out: nothing was
    /// sent (a pooled one had closed while idle).
    NotSent,
    /// The connection closed, or failed, before the answer's head came: a connection
    /// taken from the pool that the upstream had closed while idle, most likely.
    Unanswered(String),
    /// Any other failure, which stands.
    Failed(E),
}

/// What follows a failed try.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NextTry {
    /// Again at the same endpoint, on another idle connection or a new one.
    SameEndpoint,
    /// At the next endpoint in turn.
    OtherEndpoint,
    /// No more tries: the failure is the answer.
    GiveUp,
}

/// After the endpoint refused a connection: nothing was sent, yet only a request that
/// can be rebuilt goes elsewhere (a body is read from the client once).
pub(crate) fn after_connect_failure(replayable: bool) -> NextTry {
    if replayable { NextTry::OtherEndpoint } else { NextTry::GiveUp }
}

/// After a try on a connection failed; `reused`: the connection came from the pool.
pub(crate) fn after_try<E>(tried: &Tried<E>, reused: bool, replayable: bool) -> NextTry {
    match tried {
        // A new connection that fails is the endpoint's failure, not a stale one's.
        Tried::NotSent if reused => NextTry::SameEndpoint,
        Tried::Unanswered(_) if reused && replayable => NextTry::SameEndpoint,
        Tried::NotSent | Tried::Unanswered(_) | Tried::Failed(_) => NextTry::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_idempotent_requests_are_replayed() {
        assert!(replayable("GET", true) && replayable("DELETE", true) && replayable("PUT", true));
        assert!(!replayable("GET", false), "a body is read once");
        assert!(!replayable("POST", true) && !replayable("PATCH", true));
    }

    #[test]
    fn a_request_goes_again_only_where_it_cannot_have_been_acted_on_or_that_is_harmless() {
        let unanswered = Tried::<()>::Unanswered("closed".into());
        assert_eq!(after_try(&unanswered, true, true), NextTry::SameEndpoint, "a stale pooled connection");
        assert_eq!(after_try(&unanswered, false, true), NextTry::GiveUp, "a new connection's failure stands");
        assert_eq!(after_try(&unanswered, true, false), NextTry::GiveUp, "a POST may have been acted on");
        assert_eq!(after_try(&Tried::<()>::NotSent, true, false), NextTry::SameEndpoint, "nothing was sent");
        assert_eq!(
            after_try(&Tried::<()>::NotSent, false, true),
            NextTry::GiveUp,
            "a new connection that takes nothing"
        );
        assert_eq!(after_try(&Tried::Failed(()), true, true), NextTry::GiveUp);
        assert_eq!(after_connect_failure(true), NextTry::OtherEndpoint);
        assert_eq!(after_connect_failure(false), NextTry::GiveUp);
    }
}
