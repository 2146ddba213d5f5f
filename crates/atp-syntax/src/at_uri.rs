//! AT-URIs in the strict form of the Lexicon `at-uri` format (<https://atproto.com/specs/at-uri-scheme>).
//!
//! `at://<authority>[/<collection>[/<rkey>]]`: the authority is a DID or a handle, the collection
//! an NSID, the record key a [`RecordKey`]. No query, no fragment, no trailing slash, no empty
//! segment, at most 8 KiB. The general AT-URI syntax (arbitrary paths, queries, fragments) is not
//! accepted: every AT-URI this PDS handles names a repository, a collection or a record.

use serde::{Deserialize, Serialize};

use crate::at_identifier::AtIdentifier;
use crate::error::{Kind, Reason, SyntaxError};
use crate::nsid::Nsid;
use crate::record_key::RecordKey;

/// Longest AT-URI, in bytes.
pub const MAX_AT_URI_LEN: usize = 8192;

/// A valid AT-URI naming a repository, a collection or a record, such as
/// `at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3jzfcijpj2z2a`.
///
/// Kept as written (no normalisation of the handle or NSID case), with its parts parsed.
/// Equality, order and hash are those of the string.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AtUri {
    uri: String,
    authority: AtIdentifier,
    collection: Option<Nsid>,
    rkey: Option<RecordKey>,
}

impl AtUri {
    /// Builds an AT-URI from parts. A record key needs a collection; `rkey` without `collection`
    /// is an error.
    pub fn new(
        authority: AtIdentifier,
        collection: Option<Nsid>,
        rkey: Option<RecordKey>,
    ) -> Result<AtUri, SyntaxError> {
        match (collection, rkey) {
            (None, None) => Ok(AtUri::for_repo(authority)),
            (Some(collection), None) => Ok(AtUri::for_collection(authority, collection)),
            (Some(collection), Some(rkey)) => Ok(AtUri::for_record(authority, collection, rkey)),
            (None, Some(_)) => Err(SyntaxError::new(
                Kind::AtUri,
                Reason::RecordKeyWithoutCollection,
            )),
        }
    }

    /// `at://<authority>`.
    pub fn for_repo(authority: AtIdentifier) -> AtUri {
        AtUri {
            uri: format!("at://{authority}"),
            authority,
            collection: None,
            rkey: None,
        }
    }

    /// `at://<authority>/<collection>`.
    pub fn for_collection(authority: AtIdentifier, collection: Nsid) -> AtUri {
        // Longest case: 5 + 2048 + 1 + 317 bytes, far below the 8 KiB limit.
        AtUri {
            uri: format!("at://{authority}/{collection}"),
            authority,
            collection: Some(collection),
            rkey: None,
        }
    }

    /// `at://<authority>/<collection>/<rkey>`.
    pub fn for_record(authority: AtIdentifier, collection: Nsid, rkey: RecordKey) -> AtUri {
        AtUri {
            uri: format!("at://{authority}/{collection}/{rkey}"),
            authority,
            collection: Some(collection),
            rkey: Some(rkey),
        }
    }

    /// The URI as a string slice, exactly as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The owned string, without copying.
    pub fn into_string(self) -> String {
        self.uri
    }

    /// The repository: a DID or a handle.
    pub fn authority(&self) -> &AtIdentifier {
        &self.authority
    }

    /// The collection, if the URI has a path.
    pub fn collection(&self) -> Option<&Nsid> {
        self.collection.as_ref()
    }

    /// The record key, if the URI names a record.
    pub fn rkey(&self) -> Option<&RecordKey> {
        self.rkey.as_ref()
    }

    fn parse_str(s: &str) -> Result<Self, SyntaxError> {
        Self::parse_string(s.to_owned())
    }

    fn parse_string(uri: String) -> Result<Self, SyntaxError> {
        let (authority, collection, rkey) =
            parse_parts(&uri).map_err(|reason| SyntaxError::new(Kind::AtUri, reason))?;
        Ok(AtUri {
            uri,
            authority,
            collection,
            rkey,
        })
    }
}

type Parts = (AtIdentifier, Option<Nsid>, Option<RecordKey>);

fn parse_parts(s: &str) -> Result<Parts, Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.len() > MAX_AT_URI_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_AT_URI_LEN,
        });
    }
    let Some(rest) = s.strip_prefix("at://") else {
        return Err(Reason::Expected {
            what: "\"at://\"",
            at: 0,
        });
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > 3 {
        return Err(Reason::TooManySegments {
            found: segments.len(),
            max: 3,
        });
    }
    if let Some(index) = segments.iter().position(|seg| seg.is_empty()) {
        return Err(Reason::EmptySegment { index });
    }
    let component = |err: SyntaxError| Reason::Component {
        component: err.kind,
        reason: Box::new(err.reason),
    };
    let mut segments = segments.into_iter();
    let authority = AtIdentifier::parse_component(segments.next().unwrap_or_default().to_owned())
        .map_err(component)?;
    let collection = segments
        .next()
        .map(str::parse::<Nsid>)
        .transpose()
        .map_err(component)?;
    let rkey = segments
        .next()
        .map(str::parse::<RecordKey>)
        .transpose()
        .map_err(component)?;
    Ok((authority, collection, rkey))
}

string_impls!(AtUri);

impl PartialEq for AtUri {
    fn eq(&self, other: &Self) -> bool {
        self.uri == other.uri
    }
}

impl Eq for AtUri {}

impl PartialOrd for AtUri {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AtUri {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.uri.cmp(&other.uri)
    }
}

impl std::hash::Hash for AtUri {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.uri.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<AtUri>().unwrap_err().reason
    }

    #[test]
    fn parts() {
        let uri: AtUri = "at://did:plc:asdf123/com.atproto.feed.post/record"
            .parse()
            .unwrap();
        assert_eq!(uri.authority().as_str(), "did:plc:asdf123");
        assert_eq!(
            uri.collection().map(Nsid::as_str),
            Some("com.atproto.feed.post")
        );
        assert_eq!(uri.rkey().map(RecordKey::as_str), Some("record"));
        let uri: AtUri = "at://user.bsky.social".parse().unwrap();
        assert!(uri.authority().as_handle().is_some());
        assert_eq!((uri.collection(), uri.rkey()), (None, None));
    }

    #[test]
    fn builds_from_parts() {
        let did: AtIdentifier = "did:plc:abc".parse().unwrap();
        let nsid: Nsid = "app.bsky.feed.post".parse().unwrap();
        let rkey: RecordKey = "3jzfcijpj2z2a".parse().unwrap();
        let uri = AtUri::new(did.clone(), Some(nsid.clone()), Some(rkey.clone())).unwrap();
        assert_eq!(
            uri.as_str(),
            "at://did:plc:abc/app.bsky.feed.post/3jzfcijpj2z2a"
        );
        assert_eq!(uri, uri.as_str().parse().unwrap());
        assert_eq!(
            AtUri::new(did.clone(), Some(nsid), None).unwrap().as_str(),
            "at://did:plc:abc/app.bsky.feed.post"
        );
        assert_eq!(
            AtUri::new(did.clone(), None, None).unwrap().as_str(),
            "at://did:plc:abc"
        );
        assert!(AtUri::new(did, None, Some(rkey)).is_err());
    }

    #[test]
    fn reasons() {
        assert_eq!(
            reason("AT://did:plc:a"),
            Reason::Expected {
                what: "\"at://\"",
                at: 0
            }
        );
        assert_eq!(reason("at://did:plc:a/"), Reason::EmptySegment { index: 1 });
        assert_eq!(
            reason("at://a.com/b.c.d/e/f"),
            Reason::TooManySegments { found: 4, max: 3 }
        );
        assert!(matches!(
            reason("at://name"),
            Reason::Component {
                component: Kind::Handle,
                ..
            }
        ));
        assert!(matches!(
            reason("at://did:plc:a#"),
            Reason::Component {
                component: Kind::Did,
                ..
            }
        ));
        assert!(matches!(
            reason("at://a.com/short/x"),
            Reason::Component {
                component: Kind::Nsid,
                ..
            }
        ));
        assert!(matches!(
            reason("at://a.com/a.b.c/.."),
            Reason::Component {
                component: Kind::RecordKey,
                ..
            }
        ));
    }

    #[test]
    fn serde_and_equality() {
        let uri: AtUri = serde_json::from_str("\"at://john.test/a.b.c\"").unwrap();
        assert_eq!(
            serde_json::to_string(&uri).unwrap(),
            "\"at://john.test/a.b.c\""
        );
        assert!(serde_json::from_str::<AtUri>("\"at://john.test/\"").is_err());
        let mut set = std::collections::HashSet::new();
        set.insert(uri.clone());
        assert!(set.contains(&uri));
    }
}
