//! The Lexicon `at-identifier` string format: a DID or a handle.

use serde::{Deserialize, Serialize};

use crate::did::Did;
use crate::error::{Kind, Reason, SyntaxError};
use crate::handle::Handle;

/// A DID or a handle, as accepted where an account may be named either way (XRPC `repo`
/// parameters, the authority of an AT-URI).
///
/// A string starting with `did:` is parsed as a DID, anything else as a handle (a handle cannot
/// contain `:`, so there is no ambiguity). `Ord` puts all DIDs before all handles.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AtIdentifier {
    /// The account's DID.
    Did(Did),
    /// One of the account's handles.
    Handle(Handle),
}

impl AtIdentifier {
    /// The identifier as a string slice, exactly as it was parsed.
    pub fn as_str(&self) -> &str {
        match self {
            AtIdentifier::Did(did) => did.as_str(),
            AtIdentifier::Handle(handle) => handle.as_str(),
        }
    }

    /// The owned string, without copying.
    pub fn into_string(self) -> String {
        match self {
            AtIdentifier::Did(did) => did.into_string(),
            AtIdentifier::Handle(handle) => handle.into_string(),
        }
    }

    /// The DID, if this is one.
    pub fn as_did(&self) -> Option<&Did> {
        match self {
            AtIdentifier::Did(did) => Some(did),
            AtIdentifier::Handle(_) => None,
        }
    }

    /// The handle, if this is one.
    pub fn as_handle(&self) -> Option<&Handle> {
        match self {
            AtIdentifier::Did(_) => None,
            AtIdentifier::Handle(handle) => Some(handle),
        }
    }

    fn parse_str(s: &str) -> Result<Self, SyntaxError> {
        Self::parse_string(s.to_owned())
    }

    fn parse_string(s: String) -> Result<Self, SyntaxError> {
        Self::parse_component(s).map_err(|inner| {
            SyntaxError::new(
                Kind::AtIdentifier,
                Reason::Component {
                    component: inner.kind,
                    reason: Box::new(inner.reason),
                },
            )
        })
    }

    /// Parses as a DID or a handle; the error is the DID's or the handle's own.
    pub(crate) fn parse_component(s: String) -> Result<Self, SyntaxError> {
        if s.starts_with("did:") {
            Did::try_from(s).map(AtIdentifier::Did)
        } else {
            Handle::try_from(s).map(AtIdentifier::Handle)
        }
    }
}

string_impls!(AtIdentifier);

impl From<Did> for AtIdentifier {
    fn from(did: Did) -> AtIdentifier {
        AtIdentifier::Did(did)
    }
}

impl From<Handle> for AtIdentifier {
    fn from(handle: Handle) -> AtIdentifier {
        AtIdentifier::Handle(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch() {
        let id: AtIdentifier = "did:plc:abc".parse().unwrap();
        assert!(id.as_did().is_some());
        assert_eq!(id.to_string(), "did:plc:abc");
        let id: AtIdentifier = "John.test".parse().unwrap();
        assert_eq!(id.as_handle().map(Handle::as_str), Some("John.test"));
        assert_eq!(String::from(id), "John.test");
    }

    #[test]
    fn errors_name_the_part() {
        let err = "did:thing".parse::<AtIdentifier>().unwrap_err();
        assert_eq!(err.kind, Kind::AtIdentifier);
        assert!(matches!(
            err.reason,
            Reason::Component {
                component: Kind::Did,
                ..
            }
        ));
        let err = "@handle".parse::<AtIdentifier>().unwrap_err();
        assert!(matches!(
            err.reason,
            Reason::Component {
                component: Kind::Handle,
                ..
            }
        ));
    }

    #[test]
    fn serde() {
        let id: AtIdentifier = serde_json::from_str("\"did:web:example.com\"").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"did:web:example.com\""
        );
        assert!(serde_json::from_str::<AtIdentifier>("\"blah\"").is_err());
    }
}
