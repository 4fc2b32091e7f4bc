//! TEMPORARY STUB — replaced by the real targets module.
#![allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InternalTarget {
    Loopback,
}
impl InternalTarget {
    pub fn name(self) -> &'static str {
        "loopback"
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSecret {
    Etc,
}
impl FileSecret {
    pub fn name(self) -> &'static str {
        "etc"
    }
}
pub fn internal_target(value: &str) -> Option<InternalTarget> {
    value.contains("127.0.0.1").then_some(InternalTarget::Loopback)
}
pub fn file_secret(value: &str) -> Option<FileSecret> {
    value.contains("/etc/").then_some(FileSecret::Etc)
}
