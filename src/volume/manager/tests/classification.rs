//! Each way a volume operation fails has one gRPC code and at most one Event reason.

use tonic::Code;

use super::super::*;
use crate::attributes::KeySpec;
use crate::pod_events::reason;

#[test]
fn each_failure_has_one_code_and_event_reason() {
    let table = [
        (
            VolumeError::InvalidAttributes(InvalidAttributes(Vec::new())),
            Code::InvalidArgument,
            None,
        ),
        (
            VolumeError::InvalidArgument("m".into()),
            Code::InvalidArgument,
            None,
        ),
        (
            VolumeError::TargetConflict {
                volume_id: "v".into(),
                existing: "/a".into(),
                requested: "/b".into(),
            },
            Code::AlreadyExists,
            None,
        ),
        (
            VolumeError::Key(KeyError::Unsupported(KeySpec::DEFAULT, "m")),
            Code::InvalidArgument,
            None,
        ),
        (
            VolumeError::Key(KeyError::Generation(KeySpec::DEFAULT)),
            Code::Internal,
            None,
        ),
        (
            VolumeError::Issuer(IssuerError::denied("m")),
            Code::PermissionDenied,
            Some(reason::DENIED),
        ),
        (
            VolumeError::Issuer(IssuerError::misconfigured("m")),
            Code::FailedPrecondition,
            None,
        ),
        (
            VolumeError::Io {
                context: "m".into(),
                source: io::Error::other("m"),
            },
            Code::Internal,
            None,
        ),
        (
            VolumeError::TargetInUse {
                target: "/t".into(),
                what: "m".into(),
            },
            Code::FailedPrecondition,
            None,
        ),
        (VolumeError::NotFound("v".into()), Code::NotFound, None),
        (
            VolumeError::TooLarge {
                volume_id: "v".into(),
                needed: 2,
                limit: 1,
            },
            Code::ResourceExhausted,
            None,
        ),
        (VolumeError::Cancelled("v".into()), Code::Aborted, None),
        (VolumeError::Internal("m".into()), Code::Internal, None),
    ];
    for (error, code, reason) in table {
        assert_eq!(error.code(), code, "{error:?}");
        assert_eq!(error.event_reason(), reason, "{error:?}");
    }
}
