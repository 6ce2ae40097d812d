//! Mail about the organization's facts: an accepted invitation tells whoever sent it.

use crate::store::OrganizationStore;
use clients::people::Directory;
use kit::mail::{Language, Mail, letters};
use kit::notify::{Compose, Notice};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

pub struct Notices {
    pub store: Arc<dyn OrganizationStore>,
    pub people: Directory,
}

fn id(fact: &Value, field: &str) -> Option<Uuid> {
    fact["payload"][field].as_str().and_then(|s| s.parse().ok())
}

impl Compose for Notices {
    const KINDS: &'static [&'static str] = &["member.joined"];

    async fn compose(&self, fact: &Value) -> anyhow::Result<Vec<Notice>> {
        let (Some(organization), Some(member), Some(inviter)) =
            (id(fact, "organization_id"), id(fact, "user_id"), id(fact, "invited_by"))
        else {
            return Ok(Vec::new());
        };
        let Some(organization) = self.store.get(organization).await? else { return Ok(Vec::new()) };
        let people = self.people.look_up(&[inviter, member], None).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let (Some(to), Some(joined)) = (people.get(&inviter), people.get(&member)) else {
            return Ok(Vec::new());
        };
        let language = Language::of_tag(&to.language);
        let letter = letters::write(
            "invitation_accepted",
            language,
            json!({
                "name": to.display_name, "member": joined.display_name, "organization": organization.name,
                "role": fact["payload"]["role"],
            }),
        )?;
        let key = format!("{}:{}", fact["id"].as_str().unwrap_or_default(), to.id);
        Ok(vec![Notice { key, mail: Mail::new(&to.email, letter) }])
    }
}
