//! The macros that give every identifier type the same conversions.
//!
//! Every type gets `FromStr`, `TryFrom<String>`, `TryFrom<&str>`, `Display`, `AsRef<str>`,
//! `From<T> for String` and `as_str()`, all going through one parser, so there is no way to build a
//! value that skipped validation. Serde uses `try_from = "String"` on the type itself.

/// Defines `pub struct $name(String)` whose only constructor runs `$check(&str)`.
macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $check:path) => {
        $(#[$meta])*
        #[derive(
            Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as a string slice, exactly as it was parsed.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The owned string, without copying.
            pub fn into_string(self) -> String {
                self.0
            }

            fn parse_str(s: &str) -> Result<Self, $crate::SyntaxError> {
                $check(s)?;
                Ok($name(s.to_owned()))
            }

            fn parse_string(s: String) -> Result<Self, $crate::SyntaxError> {
                $check(&s)?;
                Ok($name(s))
            }
        }

        string_impls!($name);
    };
}

/// Conversions for a type that has `parse_str`, `parse_string`, `as_str` and `into_string`.
macro_rules! string_impls {
    ($name:ident) => {
        impl ::std::str::FromStr for $name {
            type Err = $crate::SyntaxError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse_str(s)
            }
        }

        impl ::std::convert::TryFrom<String> for $name {
            type Error = $crate::SyntaxError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse_string(s)
            }
        }

        impl ::std::convert::TryFrom<&str> for $name {
            type Error = $crate::SyntaxError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse_str(s)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.into_string()
            }
        }
    };
}
