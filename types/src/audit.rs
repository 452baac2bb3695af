//! The audit log: who changed what, and when. Every change the operator makes
//! through the admin API, and every change a customer's key makes to the account's
//! keys, credentials and settings, is one [`AuditEntry`] in the `AUDIT` stream
//! (`audit.customer.<id>` for what concerns one customer, `audit.operator` for the
//! rest). Entries name the route and path, never a body: bodies may hold secrets.
use serde::{Deserialize, Serialize};

use crate::ids::CustomerId;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The holder of the admin key.
    Operator,
    /// A customer's API key, by its id (`rns_<id>_…`).
    Key { key_id: String },
    /// A person signed in to the console, by their id.
    Person { person_id: String },
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    pub actor: Actor,
    /// The customer the action concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    /// The method and route (`PUT /v1/admin/customers/{id}/limits`).
    pub action: String,
    /// The path as called (`/v1/admin/customers/acme/limits`), without the query.
    pub path: String,
    /// The answer's status: refused attempts are recorded too.
    pub status: u16,
}

/// The subject of an entry concerning `customer` (or none).
pub fn audit_subject(customer: Option<&CustomerId>) -> String {
    match customer {
        Some(customer) => format!("audit.customer.{customer}"),
        None => "audit.operator".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_to_their_customers_subject_and_read_back() {
        let acme = CustomerId::parse("acme").unwrap();
        assert_eq!(audit_subject(Some(&acme)), "audit.customer.acme");
        assert_eq!(audit_subject(None), "audit.operator");
        let entry = AuditEntry {
            at_ms: 1,
            actor: Actor::Key {
                key_id: "0a1b2c3d".into(),
            },
            customer: Some(acme),
            action: "POST /v1/api-keys".into(),
            path: "/v1/api-keys".into(),
            status: 201,
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(
            json["actor"],
            serde_json::json!({"kind": "key", "key_id": "0a1b2c3d"})
        );
        assert_eq!(serde_json::from_value::<AuditEntry>(json).unwrap(), entry);
    }
}
