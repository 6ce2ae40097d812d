//! The platform's facts that several parts must agree on, each written once: which
//! services exist, which paths each serves and how much the gateway checks a token there,
//! the names of the settings the operator renders and the services read ([`env`]), how
//! signing keys are named and rotated ([`keys`]), and the gateway's default limits
//! ([`limits`]).
//!
//! The gateway, the operator and `veche` read it; it is data only, so the operator
//! learns the platform's shape without running any service code.

pub mod env;
pub mod keys;
pub mod limits;

use serde::{Deserialize, Serialize};

/// The services of a platform.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Users,
    Organizations,
    Events,
    Analytics,
    Gateway,
}

impl Service {
    /// Every service, in the order they are rolled out and reported.
    pub const ALL: [Service; 5] =
        [Service::Users, Service::Organizations, Service::Events, Service::Analytics, Service::Gateway];

    /// The services behind the gateway, which keep the platform's data.
    pub const DOMAIN: [Service; 4] = [Service::Users, Service::Organizations, Service::Events, Service::Analytics];

    /// The domain services that can keep their data in YDB: none yet (issue 21 tracks
    /// the work). The operator and the CRD's rules read this list, so a service that
    /// learns YDB is named here and nowhere else.
    pub const SPEAKS_YDB: &'static [Service] = &[];

    /// The name used in object names, `veche serve <name>`, token audiences, client ids
    /// and Secret keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Service::Users => "users",
            Service::Organizations => "organizations",
            Service::Events => "events",
            Service::Analytics => "analytics",
            Service::Gateway => "gateway",
        }
    }

    /// Whether the service keeps data (the gateway keeps none).
    pub const fn is_stateful(self) -> bool {
        !matches!(self, Service::Gateway)
    }

    /// Whether the service can keep its data in YDB, so that its replicas share one
    /// database. Until it can, it keeps one SQLite file on one volume, and the operator
    /// runs it with one replica even on a Platform that names a YDB database.
    pub fn speaks_ydb(self) -> bool {
        Self::SPEAKS_YDB.contains(&self)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gateway asks of a request's token before passing it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Nothing: the route is public and a token, if any, is the upstream's business.
    None,
    /// A token is not needed, but one that is sent must be valid.
    Optional,
    /// A valid access token is needed.
    Required,
}

/// A path prefix (on segment boundaries), the service behind it, and its access rule;
/// serialized as a route of the gateway's route table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Route {
    pub prefix: &'static str,
    pub upstream: Service,
    #[serde(rename = "auth")]
    pub access: Access,
}

const fn route(prefix: &'static str, upstream: Service, access: Access) -> Route {
    Route { prefix, upstream, access }
}

/// The public routes, at the gateway. A `*` segment matches any one segment. The longest
/// matching prefix wins, so
/// `/api/v1/users/me/organizations` goes to organizations while the rest of
/// `/api/v1/users` goes to users.
pub const ROUTES: &[Route] = &[
    route("/api/v1/auth", Service::Users, Access::Optional),
    route("/api/v1/users", Service::Users, Access::Required),
    route("/api/v1/users/me/organizations", Service::Organizations, Access::Required),
    route("/api/v1/users/me/registrations", Service::Events, Access::Required),
    route("/api/v1/users/me/calendar", Service::Events, Access::Required),
    // The personal calendar feed: calendar apps fetch it by its secret URL, without a token.
    route("/api/v1/calendar", Service::Events, Access::None),
    route("/api/v1/organizations", Service::Organizations, Access::Optional),
    // An organization's sources of events live with the events they import, its webhooks
    // with the facts they deliver.
    route("/api/v1/organizations/*/sources", Service::Events, Access::Required),
    route("/api/v1/organizations/*/webhooks", Service::Events, Access::Required),
    route("/api/v1/events", Service::Events, Access::Optional),
    route("/api/v1/analytics", Service::Analytics, Access::Optional),
    route("/.well-known", Service::Users, Access::None),
    route("/dashboard", Service::Analytics, Access::None),
    // The pages the mails link to, and their files.
    route("/invitations", Service::Organizations, Access::None),
    route("/verify-email", Service::Users, Access::None),
    route("/reset-password", Service::Users, Access::None),
    route("/account", Service::Users, Access::None),
];

/// Routes between services only, never at the edge: each callee checks the caller's
/// service token itself.
pub const INTERNAL_ROUTES: &[Route] = &[
    // Deliveries of domain facts from the services' outboxes.
    route("/internal/v1/analytics", Service::Analytics, Access::None),
    // Deleted accounts leaving their organizations.
    route("/internal/v1/organizations", Service::Organizations, Access::None),
    // Sessions that ended before their tokens expire.
    route("/internal/v1/sessions", Service::Users, Access::None),
    // The names behind account ids.
    route("/internal/v1/users", Service::Users, Access::None),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_serialize_as_written() {
        for s in Service::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(serde_json::from_value::<Service>(s.as_str().into()).unwrap(), s);
        }
        assert!(serde_json::from_value::<Service>("billing".into()).is_err());
    }

    #[test]
    fn every_prefix_is_listed_once_and_served_by_a_domain_service() {
        let all: Vec<&Route> = ROUTES.iter().chain(INTERNAL_ROUTES).collect();
        for (i, r) in all.iter().enumerate() {
            assert!(r.prefix.starts_with('/') && !r.prefix.ends_with('/'), "{}", r.prefix);
            assert!(Service::DOMAIN.contains(&r.upstream), "{}", r.prefix);
            assert!(all[i + 1..].iter().all(|o| o.prefix != r.prefix), "{} twice", r.prefix);
        }
        assert!(INTERNAL_ROUTES.iter().all(|r| r.prefix.starts_with("/internal/")));
        assert!(ROUTES.iter().all(|r| !r.prefix.starts_with("/internal")), "internal paths stay off the edge");
    }
}
