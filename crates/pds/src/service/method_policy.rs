//! Which XRPC methods need more than an ordinary session: the reference PDS's
//! `PROTECTED_METHODS` and `PRIVILEGED_METHODS` (`packages/pds/src/pipethrough.ts`).
//!
//! - Protected methods manage the account itself: they must be called on this server directly,
//!   never proxied and never authorized by a service-auth token, so `getServiceAuth` refuses to
//!   mint a token bound to one.
//! - Privileged methods (the `chat.bsky.*` surface and `createAccount`) need a full session or a
//!   privileged app password; an ordinary app password may neither call them through the proxy
//!   nor obtain a token for them.

/// Account-management methods: no proxying, no service-auth tokens.
pub const PROTECTED_METHODS: &[&str] = &[
    "com.atproto.admin.sendEmail",
    "com.atproto.identity.requestPlcOperationSignature",
    "com.atproto.identity.signPlcOperation",
    "com.atproto.identity.updateHandle",
    "com.atproto.server.activateAccount",
    "com.atproto.server.confirmEmail",
    "com.atproto.server.createAppPassword",
    "com.atproto.server.deactivateAccount",
    "com.atproto.server.getAccountInviteCodes",
    "com.atproto.server.getSession",
    "com.atproto.server.listAppPasswords",
    "com.atproto.server.requestAccountDelete",
    "com.atproto.server.requestEmailConfirmation",
    "com.atproto.server.requestEmailUpdate",
    "com.atproto.server.revokeAppPassword",
    "com.atproto.server.updateEmail",
];

/// Methods an ordinary (non-privileged) app password may not use.
pub const PRIVILEGED_METHODS: &[&str] = &[
    "chat.bsky.actor.deleteAccount",
    "chat.bsky.actor.exportAccountData",
    "chat.bsky.convo.deleteMessageForSelf",
    "chat.bsky.convo.getConvo",
    "chat.bsky.convo.getConvoForMembers",
    "chat.bsky.convo.getLog",
    "chat.bsky.convo.getMessages",
    "chat.bsky.convo.leaveConvo",
    "chat.bsky.convo.listConvos",
    "chat.bsky.convo.muteConvo",
    "chat.bsky.convo.sendMessage",
    "chat.bsky.convo.sendMessageBatch",
    "chat.bsky.convo.unmuteConvo",
    "chat.bsky.convo.updateRead",
    "com.atproto.server.createAccount",
];

/// Whether `nsid` is protected (exact match, as the reference).
pub fn is_protected(nsid: &str) -> bool {
    PROTECTED_METHODS.contains(&nsid)
}

/// Whether `nsid` is privileged (exact match, as the reference).
pub fn is_privileged(nsid: &str) -> bool {
    PRIVILEGED_METHODS.contains(&nsid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_valid_sorted_nsids_and_disjoint() {
        for list in [PROTECTED_METHODS, PRIVILEGED_METHODS] {
            for nsid in list {
                assert!(nsid.parse::<atp_syntax::Nsid>().is_ok(), "{nsid}");
            }
            assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        }
        assert!(PROTECTED_METHODS.iter().all(|m| !is_privileged(m)));
        assert!(is_protected("com.atproto.identity.updateHandle"));
        assert!(!is_protected("com.atproto.identity.updatehandle"));
        assert!(is_privileged("chat.bsky.convo.getMessages"));
        assert!(!is_privileged("app.bsky.feed.getTimeline"));
    }
}
