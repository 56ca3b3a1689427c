//! Which cert-manager issuer signs: a name (required), a kind and a group (upstream's defaults),
//! each used exactly as written.

use super::reader::Reader;
use super::spec::IssuerRef;
use super::table::{Part, key};

pub(super) fn read(reader: &mut Reader<'_>) -> IssuerRef {
    let reader = reader.part(Part::Issuer);
    let name = match reader.get(key::ISSUER_NAME) {
        None | Some("") => {
            let raw = reader.get(key::ISSUER_NAME);
            reader.problem(key::ISSUER_NAME, raw, "is required and must not be empty");
            String::new()
        }
        Some(_) => reader.verbatim(key::ISSUER_NAME, ""),
    };
    // Neither is trimmed: the Go driver sends them as written (an empty one is unset).
    IssuerRef {
        name,
        kind: reader.verbatim(key::ISSUER_KIND, "Issuer"),
        group: reader.verbatim(key::ISSUER_GROUP, "cert-manager.io"),
    }
}
