//! The trait impls and methods every identifier type shares, as macros: the canonical string
//! and bytes, HTTP path parameters, `Display`/`Debug`, conversions and serde
//! (`common_impls!`), and strict path-parameter parsing (`strict_path_param!`).
//!
//! The macros name everything they use by its full path, so they expand the same in any module.

macro_rules! common_impls {
    ($name:ident) => {
        impl $name {
            /// The canonical URI string.
            pub fn as_str(&self) -> &str {
                &self.uri
            }

            /// The canonical URI string, consuming `self`.
            pub fn into_string(self) -> String {
                self.uri
            }

            /// The canonical URI as UTF-8 bytes (as borrowed bytes).
            pub fn as_bytes(&self) -> &[u8] {
                self.uri.as_bytes()
            }

            /// The canonical URI as UTF-8 bytes, for a TLS `opaque uri<V>`.
            pub fn to_bytes(&self) -> Vec<u8> {
                self.uri.as_bytes().to_vec()
            }

            /// Parses the UTF-8 bytes of a TLS `opaque uri<V>`.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, $crate::uri::UriError> {
                if bytes.is_empty() {
                    return Err($crate::uri::UriError::Empty);
                }
                std::str::from_utf8(bytes)
                    .map_err(|_| $crate::uri::UriError::NotUtf8)?
                    .parse()
            }

            /// The canonical URI percent-encoded as a single HTTP path
            /// segment, e.g. `mimi%3A%2F%2Fa.example%2Fr%2Fclubhouse`.
            pub fn to_path_param(&self) -> String {
                percent_encoding::utf8_percent_encode(
                    &self.uri,
                    $crate::uri::syntax::NOT_UNRESERVED,
                )
                .to_string()
            }

            /// Parses a raw (still percent-encoded) path parameter: decodes
            /// it once, then calls `from_path_param`.
            pub fn from_encoded_path_param(raw: &str) -> Result<Self, $crate::uri::UriError> {
                Self::from_path_param(&$crate::uri::syntax::decode_path_param(raw)?)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(&self.uri)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.uri).finish()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.uri
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.uri
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::uri::UriError;
            fn try_from(value: &str) -> Result<Self, $crate::uri::UriError> {
                value.parse()
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::uri::UriError;
            fn try_from(value: String) -> Result<Self, $crate::uri::UriError> {
                value.parse()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.uri)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! strict_path_param {
    ($name:ident) => {
        impl $name {
            /// Parses a decoded path parameter, with or without `mimi://`
            /// (e.g. `a.example/u/alice`).
            pub fn from_path_param(decoded: &str) -> Result<Self, $crate::uri::UriError> {
                $crate::uri::syntax::with_scheme(decoded).parse()
            }
        }
    };
}

pub(super) use common_impls;
pub(super) use strict_path_param;
