//! The Lexicon `language` string format: BCP-47 language tags (RFC 5646).
//!
//! Grammar (RFC 5646 section 2.1), walked subtag by subtag:
//! `language [-extlang{1,3}] [-script] [-region] *(-variant) *(-extension) [-privateuse]`, or a
//! lone `x-...` private-use tag, or one of the 26 grandfathered tags. Subtags are ASCII letters and
//! digits, 1 to 8 long.
//!
//! Tricky bits:
//! - As upstream atproto does, the primary language subtag must be 2 or 3 **lower-case** letters
//!   (so `JA` and the RFC's reserved 4-letter and registered 5-8-letter forms such as `jaja` are
//!   refused); grandfathered tags match exactly as registered (`i-default`, `zh-hakka`).
//!   Other subtags are case-insensitive.
//! - Two stages, as in the interop vectors: [`Language::check_syntax`] is the grammar only; the
//!   full parse also refuses a repeated variant or extension singleton (RFC 5646 sections 2.2.5
//!   and 2.2.6, compared case-insensitively), e.g. `de-DE-1901-1901`.
//! - A tag that does not fit the grammar is refused even if lenient parsers accept it, e.g.
//!   `de-419-DE` (a second region).
//! - Registry lookups (is `qq` a language?) are out of scope.

use crate::error::{Kind, Reason, SyntaxError};

/// Longest language tag, in bytes (as in indigo).
pub const MAX_LANGUAGE_LEN: usize = 128;

string_newtype!(
    /// A well-formed BCP-47 language tag without repeated variants or singletons, such as `pt-BR`,
    /// kept exactly as written.
    Language,
    check
);

impl Language {
    /// Checks only the BCP-47 grammar; unlike parsing, allows repeated variants and singletons.
    pub fn check_syntax(s: &str) -> Result<(), SyntaxError> {
        walk(s, false).map_err(error)
    }
}

const GRANDFATHERED: [&str; 26] = [
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

fn error(reason: Reason) -> SyntaxError {
    SyntaxError::new(Kind::Language, reason)
}

fn check(s: &str) -> Result<(), SyntaxError> {
    walk(s, true).map_err(error)
}

/// Checks the grammar, and with `strict` also that no variant or singleton repeats.
fn walk(s: &str, strict: bool) -> Result<(), Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.len() > MAX_LANGUAGE_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_LANGUAGE_LEN,
        });
    }
    if GRANDFATHERED.contains(&s) {
        return Ok(());
    }
    let subtags: Vec<&str> = s.split('-').collect();
    check_subtags(&subtags)?;
    let mut tags = Subtags {
        subtags: &subtags,
        pos: 0,
    };
    if tags.private_use()? {
        return tags.finish();
    }
    tags.language()?;
    tags.optional(|t| t.len() == 4 && is_alpha(t)); // script
    tags.optional(|t| (t.len() == 2 && is_alpha(t)) || (t.len() == 3 && is_digit(t))); // region
    tags.variants(strict)?;
    tags.extensions(strict)?;
    tags.private_use()?;
    tags.finish()
}

/// Every subtag is 1 to 8 ASCII letters or digits.
fn check_subtags(subtags: &[&str]) -> Result<(), Reason> {
    let mut offset = 0;
    for (index, subtag) in subtags.iter().enumerate() {
        if subtag.is_empty() {
            return Err(Reason::EmptySegment { index });
        }
        if let Some((at, ch)) = subtag
            .char_indices()
            .find(|&(_, c)| !c.is_ascii_alphanumeric())
        {
            return Err(Reason::InvalidChar {
                ch,
                at: offset + at,
            });
        }
        if subtag.len() > 8 {
            return Err(Reason::SegmentTooLong {
                index,
                len: subtag.len(),
                max: 8,
            });
        }
        offset += subtag.len() + 1;
    }
    Ok(())
}

fn is_alpha(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_digit(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_digit())
}

fn is_variant(t: &str) -> bool {
    (5..=8).contains(&t.len())
        || (t.len() == 4 && t.as_bytes().first().is_some_and(u8::is_ascii_digit))
}

/// A cursor over subtags already known to be 1 to 8 ASCII alphanumerics.
struct Subtags<'a> {
    subtags: &'a [&'a str],
    pos: usize,
}

impl Subtags<'_> {
    fn peek(&self) -> Option<&str> {
        self.subtags.get(self.pos).copied()
    }

    /// Consumes the next subtag if it satisfies `accept`.
    fn optional(&mut self, accept: impl Fn(&str) -> bool) -> bool {
        let taken = self.peek().is_some_and(accept);
        if taken {
            self.pos += 1;
        }
        taken
    }

    /// The primary language subtag (2 or 3 lower-case letters) and up to three extlangs.
    fn language(&mut self) -> Result<(), Reason> {
        let lower =
            |t: &str| (2..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_lowercase());
        if !self.optional(lower) {
            return Err(Reason::Malformed {
                what: "the primary language subtag must be 2 or 3 lower-case letters",
            });
        }
        for _ in 0..3 {
            if !self.optional(|t| t.len() == 3 && is_alpha(t)) {
                break;
            }
        }
        Ok(())
    }

    fn variants(&mut self, strict: bool) -> Result<(), Reason> {
        let mut seen: Vec<String> = Vec::new();
        while let Some(variant) = self.peek().filter(|t| is_variant(t)) {
            let lower = variant.to_ascii_lowercase();
            if strict && seen.contains(&lower) {
                return Err(Reason::DuplicateSubtag { subtag: lower });
            }
            seen.push(lower);
            self.pos += 1;
        }
        Ok(())
    }

    /// `singleton 1*("-" 2*8alphanum)`, repeated; the singleton is any alphanumeric except `x`.
    fn extensions(&mut self, strict: bool) -> Result<(), Reason> {
        let mut seen: Vec<String> = Vec::new();
        while let Some(singleton) = self
            .peek()
            .filter(|t| t.len() == 1 && !t.eq_ignore_ascii_case("x"))
        {
            let lower = singleton.to_ascii_lowercase();
            if strict && seen.contains(&lower) {
                return Err(Reason::DuplicateSubtag { subtag: lower });
            }
            seen.push(lower);
            self.pos += 1;
            let mut count = 0;
            while self.optional(|t| t.len() >= 2) {
                count += 1;
            }
            if count == 0 {
                return Err(Reason::Malformed {
                    what: "an extension singleton needs at least one subtag of 2 to 8 characters",
                });
            }
        }
        Ok(())
    }

    /// `x 1*("-" 1*8alphanum)` up to the end; returns whether it was there.
    fn private_use(&mut self) -> Result<bool, Reason> {
        if !self.optional(|t| t.eq_ignore_ascii_case("x")) {
            return Ok(false);
        }
        if self.pos == self.subtags.len() {
            return Err(Reason::Malformed {
                what: "private use needs at least one subtag",
            });
        }
        self.pos = self.subtags.len();
        Ok(true)
    }

    fn finish(&self) -> Result<(), Reason> {
        if self.pos == self.subtags.len() {
            Ok(())
        } else {
            Err(Reason::Malformed {
                what: "a subtag is out of place (after region, variants or extensions)",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<Language>().unwrap_err().reason
    }

    #[test]
    fn accepts() {
        for ok in [
            "ja",
            "pt-BR",
            "zh-Hant",
            "es-419",
            "hy-Latn-IT-arevela",
            "zh-yue-HK",
            "sgn-BE-NL",
            "x-whatever",
            "X-fr-CH",
            "de-X-foo",
            "en-a-bbb-x-a-ccc",
            "de-CH-1901",
            "i-default",
            "en-u-co-phonebk-t-en-US",
        ] {
            assert!(ok.parse::<Language>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(""), Reason::Empty);
        assert_eq!(reason("ja-"), Reason::EmptySegment { index: 1 });
        assert_eq!(reason("en_US"), Reason::InvalidChar { ch: '_', at: 2 });
        assert!(matches!(reason("JA"), Reason::Malformed { .. }));
        assert!(matches!(reason("jaja"), Reason::Malformed { .. }));
        assert!(matches!(reason("de-419-DE"), Reason::Malformed { .. }));
        assert!(matches!(reason("en-a"), Reason::Malformed { .. }));
        assert!(matches!(reason("en-x"), Reason::Malformed { .. }));
        assert!(matches!(
            reason("en-abcdefghi"),
            Reason::SegmentTooLong { .. }
        ));
        assert_eq!(
            reason("sl-rozaj-Rozaj"),
            Reason::DuplicateSubtag {
                subtag: "rozaj".into()
            }
        );
        assert_eq!(
            reason("en-a-foo-A-bar"),
            Reason::DuplicateSubtag { subtag: "a".into() }
        );
    }

    #[test]
    fn duplicates_are_well_formed() {
        assert!(Language::check_syntax("de-DE-1901-1901").is_ok());
        assert!(Language::check_syntax("en-a-foo-a-bar").is_ok());
        // Private-use subtags may repeat; they are opaque.
        assert!("en-x-a-a".parse::<Language>().is_ok());
    }
}
