//! Pure checks behind the `internal_target` and `file_secret` tool-policy rules (design §5):
//! each looks at one tool-call argument string, does no I/O and no DNS, runs in time linear
//! in the input, never panics, and allocates nothing for a short value with no URL or path
//! punctuation in it.

use std::fmt;

mod ip;
mod path;
mod url_host;
mod whole;

#[cfg(test)]
mod tests;

/// Why an argument reaches inside the network. `Display` gives a short phrase for a decision's
/// `reason` that names the class, never the argument's value (e.g. "loopback address").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InternalTarget {
    /// 0.0.0.0/8 or `::` (0.0.0.0 reaches the local host on most systems).
    Unspecified,
    /// 127.0.0.0/8 or `::1`.
    Loopback,
    /// 10/8, 172.16/12 or 192.168/16.
    Private,
    /// 169.254/16 or fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// `localhost`, `*.localhost`, `ip6-localhost`, `ip6-loopback`, `localhost.localdomain`.
    Localhost,
    /// A `*.internal` name.
    InternalName,
    /// A cloud instance-metadata endpoint, by address or name.
    Metadata,
}

impl InternalTarget {
    /// Stable snake_case label, for metrics and evidence.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link_local",
            Self::UniqueLocal => "unique_local",
            Self::Localhost => "localhost",
            Self::InternalName => "internal_name",
            Self::Metadata => "metadata",
        }
    }
}

impl fmt::Display for InternalTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

impl InternalTarget {
    /// A short phrase for a `reason` ("loopback address"); never the value.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified address",
            Self::Loopback => "loopback address",
            Self::Private => "private network address",
            Self::LinkLocal => "link-local address",
            Self::UniqueLocal => "unique local address",
            Self::Localhost => "localhost name",
            Self::InternalName => "internal host name",
            Self::Metadata => "cloud metadata host",
        }
    }
}

/// Why an argument reaches the file system's secrets. `Display` names the class only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSecret {
    /// A `..` path segment (directory traversal).
    ParentSegment,
    /// A path under `/etc`.
    Etc,
    /// A path under `/root`, root's home.
    Root,
    /// A `.env` / `.env.*` dotenv file.
    DotEnv,
    /// An SSH private key file (`id_rsa`, `id_dsa`, `id_ecdsa`, `id_ed25519`, their `_sk` kin).
    SshKey,
}

impl FileSecret {
    /// Stable snake_case label, for metrics and evidence.
    pub fn name(self) -> &'static str {
        match self {
            Self::ParentSegment => "parent_segment",
            Self::Etc => "etc",
            Self::Root => "root",
            Self::DotEnv => "dot_env",
            Self::SshKey => "ssh_key",
        }
    }
}

impl fmt::Display for FileSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

impl FileSecret {
    /// A short phrase for a `reason` (".env file"); never the value.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::ParentSegment => "parent directory segment",
            Self::Etc => "/etc path",
            Self::Root => "/root path",
            Self::DotEnv => ".env file",
            Self::SshKey => "ssh private key file",
        }
    }
}

/// The first internal target in `value`: the whole (trimmed) value being an internal address
/// or name, else the host of the first URL anywhere in it that is internal.
pub fn internal_target(value: &str) -> Option<InternalTarget> {
    whole::whole_value(value).or_else(|| url_host::first_internal_url(value))
}

/// The first file-secret reference in `value` (leftmost), judged after repeated
/// percent-decoding and with `\` read as `/`.
pub fn file_secret(value: &str) -> Option<FileSecret> {
    path::first_file_secret(value)
}
