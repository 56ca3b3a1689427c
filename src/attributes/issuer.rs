//! Which cert-manager issuer signs: a name (required), a kind and a group (upstream's defaults).

use super::reader::Reader;
use super::spec::IssuerRef;
use super::table::{Part, key};

pub(super) fn read(reader: &mut Reader<'_>) -> IssuerRef {
    let reader = reader.part(Part::Issuer);
    let name = match reader.get(key::ISSUER_NAME) {
        Some(name) if !name.trim().is_empty() => name.trim().to_string(),
        raw => {
            reader.problem(key::ISSUER_NAME, raw, "is required and must not be empty");
            String::new()
        }
    };
    IssuerRef {
        name,
        kind: reader.non_empty(key::ISSUER_KIND, "Issuer"),
        group: reader.non_empty(key::ISSUER_GROUP, "cert-manager.io"),
    }
}
