use super::FileSecret::{DotEnv, Etc, ParentSegment, Root, SshKey};
use super::InternalTarget::{
    InternalName, LinkLocal, Localhost, Loopback, Metadata, Private, UniqueLocal, Unspecified,
};
use super::{file_secret, internal_target, FileSecret, InternalTarget};

mod prop;

/// URLs anywhere in a value, with the host found as WHATWG finds it.
const URL_CASES: &[(&str, Option<InternalTarget>)] = &[
    ("http://127.0.0.1/", Some(Loopback)),
    ("http:127.0.0.1/", Some(Loopback)),
    ("http:/\\127.0.0.1", Some(Loopback)),
    ("https:\\\\10.0.0.1\\x", Some(Private)),
    ("HTTP://LOCALHOST/", Some(Localhost)),
    ("hTTpS://LocalHost./admin", Some(Localhost)),
    ("gopher://127.0.0.1:70/_SET", Some(Loopback)),
    ("redis://10.0.0.5:6379", Some(Private)),
    ("dict://192.168.1.1:11211/stat", Some(Private)),
    ("ldap://169.254.1.1/", Some(LinkLocal)),
    ("please fetch http://169.254.169.254/latest/meta-data now", Some(Metadata)),
    ("http://evil.com@127.0.0.1/", Some(Loopback)),
    ("http://a@b@evil.com:1@127.0.0.1/", Some(Loopback)),
    ("http://127.0.0.1#@evil.com", Some(Loopback)),
    ("http://127.0.0.1:80\\@evil.com", Some(Loopback)),
    ("http://127.0.0.1?@evil.com", Some(Loopback)),
    ("http://user:pass@10.1.2.3:8080/x", Some(Private)),
    ("http://127.1/", Some(Loopback)),
    ("http://127.0.1/", Some(Loopback)),
    ("http://2130706433/", Some(Loopback)),
    ("http://0177.0.0.1/", Some(Loopback)),
    ("http://017700000001/", Some(Loopback)),
    ("http://0x7f.1/", Some(Loopback)),
    ("http://0x7f000001/", Some(Loopback)),
    ("http://0X7F.0.0x0.01/", Some(Loopback)),
    ("http://0x0000000000000007f.1/", Some(Loopback)),
    ("http://127.0.0.1./", Some(Loopback)),
    ("http://0/", Some(Unspecified)),
    ("http://0.0.0.0:8080/", Some(Unspecified)),
    ("http://172.16.0.1/", Some(Private)),
    ("http://172.31.255.255/", Some(Private)),
    ("http://192.168.0.1/", Some(Private)),
    ("http://3232235521/", Some(Private)),
    ("http://[::1]/", Some(Loopback)),
    ("http://[::]/", Some(Unspecified)),
    ("http://[::ffff:127.0.0.1]/", Some(Loopback)),
    ("http://[::ffff:7f00:1]/", Some(Loopback)),
    ("http://[0:0:0:0:0:ffff:a9fe:a9fe]/", Some(Metadata)),
    ("http://[::127.0.0.1]/", Some(Loopback)),
    ("http://[::ffff:192.168.1.1]:80/", Some(Private)),
    ("http://[fe80::1%25eth0]/", Some(LinkLocal)),
    ("http://[FE80::abcd]/", Some(LinkLocal)),
    ("http://[fc00::1]/", Some(UniqueLocal)),
    ("http://[fd12:3456::1]:443/", Some(UniqueLocal)),
    ("http://[fd00:ec2::254]/latest", Some(Metadata)),
    ("http://[127.0.0.1]/", Some(Loopback)),
    ("http://metadata.google.internal/computeMetadata/v1/", Some(Metadata)),
    ("http://METADATA.google.internal./", Some(Metadata)),
    ("http://metadata/computeMetadata/v1/", Some(Metadata)),
    ("http://100.100.100.200/latest/meta-data", Some(Metadata)),
    ("http://192.0.0.192/opc/v1/", Some(Metadata)),
    ("http://db.internal:5432/", Some(InternalName)),
    ("postgres://u:p@db.prod.internal/app", Some(InternalName)),
    ("http://foo.localhost/", Some(Localhost)),
    ("http://ip6-localhost/", Some(Localhost)),
    ("http://ip6-loopback:8080/", Some(Localhost)),
    ("http://%31%32%37.0.0.1/", Some(Loopback)),
    ("http://%6c%6f%63%61%6c%68%6f%73%74/", Some(Localhost)),
    ("http://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}/", Some(Localhost)),
    ("http://\u{ff11}\u{ff12}\u{ff17}\u{ff0e}\u{ff10}\u{ff0e}\u{ff10}\u{ff0e}\u{ff11}/", Some(Loopback)),
    ("http://127.0.0.1%00.evil.com/", Some(Loopback)),
    ("http://127.0.0.1%2c/", Some(Loopback)),
    ("http://\u{24db}\u{24de}\u{24d2}\u{24d0}\u{24db}\u{24d7}\u{24de}\u{24e2}\u{24e3}/", Some(Localhost)),
    ("http://127\u{3002}0\u{3002}0\u{3002}1/", Some(Loopback)),
    ("jdbc:mysql://10.0.0.1:3306/db", Some(Private)),
    ("xhttp://127.0.0.1/", Some(Loopback)),
    ("http://127.\t0.0.1/", Some(Loopback)),
    ("ht\ttp://127.0.0.1/", Some(Loopback)),
    ("http://\n127.0.0.1/", Some(Loopback)),
    ("http://a b@127.0.0.1/", Some(Loopback)),
    ("  http://10.0.0.1  ", Some(Private)),
    ("ws://localhost:9000/socket", Some(Localhost)),
    ("wss://10.2.3.4/", Some(Private)),
    ("ftp://192.168.5.5/pub", Some(Private)),
    ("ftp:10.0.0.1", Some(Private)),
    ("file://localhost/etc/passwd", Some(Localhost)),
    ("file:\\\\10.0.0.9\\share", Some(Private)),
    ("https://example.com/ then http://10.9.8.7/", Some(Private)),
    ("curl 'http://[::1]:8080/admin'", Some(Loopback)),
    ("<a href=\"http://10.0.0.1/\">x</a>", Some(Private)),
    ("(see http://127.0.0.1).", Some(Loopback)),
    ("go to http://localhost, then stop", Some(Localhost)),
    ("{\"url\": \"http://192.168.0.10/\"}", Some(Private)),
    ("text\nhttp://127.0.0.1\nmore text", Some(Loopback)),
    ("x=(http://10.0.0.1)", Some(Private)),
    ("//127.0.0.1/admin", Some(Loopback)),
    ("\\\\localhost\\c$", Some(Localhost)),
    // Not internal.
    ("https://example.com", None),
    ("https://example.com:443/path", None),
    ("https://example.com/10.0.0.1", None),
    ("https://example.com/?ip=10.0.0.1", None),
    ("https://example.com/#127.0.0.1", None),
    // A URL inside another URL's path, query or fragment is part of it.
    ("https://example.com/?next=http:127.0.0.1", None),
    ("https://accounts.example.com/login?next=http://localhost:3000/callback", None),
    ("https://docs.example.com/guide#http://127.0.0.1", None),
    ("https://example.com/a/http://10.0.0.1/", None),
    ("see https://example.com/?u=http://10.0.0.1 then http://10.0.0.2/", Some(Private)),
    ("[\"https://example.com/\",\"http://169.254.169.254/\"]", Some(Metadata)),
    ("http://evil.com#@127.0.0.1", None),
    ("http://evil.com/?@127.0.0.1", None),
    ("http://evil.com\\@127.0.0.1", None),
    ("http://127.0.0.1.nip.io/", None),
    ("http://localhost.example.com/", None),
    ("http://internal/", None),
    ("http://x.internalx/", None),
    ("http://8.8.8.8/", None),
    ("http://172.15.255.255/", None),
    ("http://172.32.0.1/", None),
    ("http://192.169.0.1/", None),
    ("http://100.100.100.201/", None),
    ("http://1.2.3.4.5/", None),
    ("http://[2001:db8::1]/", None),
    ("http://[::ffff:8.8.8.8]/", None),
    ("http: the protocol", None),
    ("http:", None),
    ("http://", None),
    ("http://[", None),
    ("mailto:bob@example.com", None),
    ("redis:10.0.0.5", None),
    ("Note: localhost-ish text", None),
    ("time 12:30 at 10.0.0.1 in prose", None),
];

/// The whole value (trimmed) being an internal address or name.
const WHOLE_CASES: &[(&str, Option<InternalTarget>)] = &[
    ("10.0.0.5", Some(Private)),
    (" 192.168.1.1 ", Some(Private)),
    ("127.0.0.1", Some(Loopback)),
    ("127.0.0.1.", Some(Loopback)),
    ("0x7f.0.0.1", Some(Loopback)),
    ("0177.0.0.01", Some(Loopback)),
    ("0.0.0.0", Some(Unspecified)),
    ("169.254.169.254", Some(Metadata)),
    ("169.254.10.1", Some(LinkLocal)),
    ("100.100.100.200", Some(Metadata)),
    ("::1", Some(Loopback)),
    ("[::1]", Some(Loopback)),
    ("::", Some(Unspecified)),
    ("fe80::1%eth0", Some(LinkLocal)),
    ("fd00:ec2::254", Some(Metadata)),
    ("::ffff:10.0.0.1", Some(Private)),
    ("10.0.0.5:8080", Some(Private)),
    ("[::1]:8080", Some(Loopback)),
    ("localhost", Some(Localhost)),
    ("LOCALHOST.", Some(Localhost)),
    ("localhost:3000", Some(Localhost)),
    ("api.localhost", Some(Localhost)),
    ("db.internal", Some(InternalName)),
    ("metadata.google.internal", Some(Metadata)),
    ("\u{ff4c}ocalhost", Some(Localhost)),
    ("\u{ff11}\u{ff12}\u{ff17}\u{ff0e}\u{ff10}\u{ff0e}\u{ff10}\u{ff0e}\u{ff11}", Some(Loopback)),
    // Not addresses: bare numbers, decimals, versions, dates, words, and any
    // spelling short of a dotted quad (design §5), which a URL's host may still use.
    ("127.50", None),
    ("127.1", None),
    ("127.0.1", None),
    ("0177.1", None),
    ("0xa.1", None),
    ("0x7f000001", None),
    ("0xA9FEA9FE", None),
    ("2130706433", None),
    ("8080", None),
    ("017700000001", None),
    ("0x10", None),
    ("0.5", None),
    ("10.5", None),
    ("0.1.0", None),
    ("10.15.7", None),
    ("10.05.2024", None),
    ("8.8.8.8", None),
    ("172.32.0.1", None),
    ("192.169.0.1", None),
    ("100.100.100.201", None),
    ("1.2.3.4.5", None),
    ("12:30", None),
    ("10:30:00", None),
    ("::before", None),
    ("2001:db8::1", None),
    ("internal", None),
    ("metadata", None),
    (".internal", None),
    ("localhost is down", None),
    ("notes on db.internal", None),
    ("refund policy", None),
    ("page 3", None),
    ("", None),
];

const FILE_CASES: &[(&str, Option<FileSecret>)] = &[
    ("../", Some(ParentSegment)),
    ("/..", Some(ParentSegment)),
    ("..", Some(ParentSegment)),
    ("foo/../bar", Some(ParentSegment)),
    ("../../etc/passwd", Some(ParentSegment)),
    ("%2e%2e%2f", Some(ParentSegment)),
    ("%2E%2E/secret", Some(ParentSegment)),
    ("%252e%252e%252f", Some(ParentSegment)),
    ("%25252e%25252e%25252f", Some(ParentSegment)),
    ("..%2fetc", Some(ParentSegment)),
    ("..\\..\\windows\\win.ini", Some(ParentSegment)),
    ("%c0%ae%c0%ae/x", Some(ParentSegment)),
    ("%u002e%u002e%u002fx", Some(ParentSegment)),
    ("path=../secret", Some(ParentSegment)),
    ("..%00.png", Some(ParentSegment)),
    ("/etc/passwd", Some(Etc)),
    ("file:///etc/shadow", Some(Etc)),
    ("file://localhost/etc/passwd", Some(Etc)),
    ("cat /etc/hosts", Some(Etc)),
    ("/ETC/passwd", Some(Etc)),
    ("\\etc\\passwd", Some(Etc)),
    ("%2fetc%2fpasswd", Some(Etc)),
    ("ls /etc", Some(Etc)),
    ("srv/etc/app.conf", Some(Etc)),
    ("/etc/../x", Some(Etc)),
    ("/root/.bashrc", Some(Root)),
    ("/root", Some(Root)),
    ("file:///root/", Some(Root)),
    ("/root/.ssh/id_rsa", Some(Root)),
    (".env", Some(DotEnv)),
    ("config/.env", Some(DotEnv)),
    (".env.local", Some(DotEnv)),
    (".env.production", Some(DotEnv)),
    ("~/.env", Some(DotEnv)),
    ("cat .env; echo", Some(DotEnv)),
    ("C:\\app\\.ENV", Some(DotEnv)),
    ("%2eenv", Some(DotEnv)),
    ("id_rsa", Some(SshKey)),
    ("~/.ssh/id_rsa", Some(SshKey)),
    ("/home/u/.ssh/id_ed25519", Some(SshKey)),
    ("id_ecdsa", Some(SshKey)),
    ("id_dsa", Some(SshKey)),
    ("id_ed25519_sk", Some(SshKey)),
    ("id_rsa.bak", Some(SshKey)),
    ("id_rsa_work", Some(SshKey)),
    ("C:\\Users\\me\\.ssh\\id_rsa", Some(SshKey)),
    ("scp host:~/.ssh/id_rsa .", Some(SshKey)),
    // Not file secrets.
    ("refund policy", None),
    ("page 3", None),
    ("...", None),
    ("a..b", None),
    ("1..2", None),
    ("version 1..2", None),
    ("wait... what", None),
    ("the end..", None),
    (".environment", None),
    ("dotenv", None),
    ("process.env.API_KEY", None),
    ("my.env", None),
    ("apples/etc", None),
    ("/etcetera/x", None),
    ("/rooted", None),
    ("id_rsa.pub", None),
    ("~/.ssh/id_rsa.pub", None),
    ("myid_rsa", None),
    ("snake_case_name", None),
    ("/home/user/file.txt", None),
    ("https://example.com/docs/index.html", None),
    ("%zz%", None),
    ("", None),
];

#[test]
fn url_cases() {
    for &(input, want) in URL_CASES {
        assert_eq!(internal_target(input), want, "internal_target({input:?})");
    }
}

#[test]
fn whole_value_cases() {
    for &(input, want) in WHOLE_CASES {
        assert_eq!(internal_target(input), want, "internal_target({input:?})");
    }
}

#[test]
fn file_cases() {
    for &(input, want) in FILE_CASES {
        assert_eq!(file_secret(input), want, "file_secret({input:?})");
    }
}

#[test]
fn rules_are_independent() {
    let v = "file://localhost/etc/passwd";
    assert_eq!(internal_target(v), Some(Localhost));
    assert_eq!(file_secret(v), Some(Etc));
    assert_eq!(file_secret("http://127.0.0.1/"), None);
    assert_eq!(internal_target("../../etc/passwd"), None);
}

#[test]
fn leftmost_url_wins() {
    assert_eq!(internal_target("http://10.0.0.1/ http://127.0.0.1/"), Some(Private));
    assert_eq!(internal_target("https://ok.example/ http://[::1]/ http://10.0.0.1/"), Some(Loopback));
}

#[test]
fn labels_and_reasons() {
    let all = [Unspecified, Loopback, Private, LinkLocal, UniqueLocal, Localhost, InternalName, Metadata];
    for t in all {
        assert!(!t.to_string().is_empty());
        assert!(t.name().bytes().all(|c| c.is_ascii_lowercase() || c == b'_'), "{}", t.name());
    }
    assert_eq!(Loopback.to_string(), "loopback address");
    assert_eq!(Metadata.to_string(), "cloud metadata host");
    assert_eq!(InternalName.name(), "internal_name");
    for f in [ParentSegment, Etc, Root, DotEnv, SshKey] {
        assert!(!f.to_string().is_empty());
        assert!(f.name().bytes().all(|c| c.is_ascii_lowercase() || c == b'_'), "{}", f.name());
    }
    assert_eq!(SshKey.name(), "ssh_key");
}

/// Runs both checks on a pathological `input`. Linearity is measured by the
/// benchmarks, not timed here; a quadratic pass over 1 MiB would take minutes and
/// show up as a stuck test.
fn bounded(_label: &str, input: &str) -> (Option<InternalTarget>, Option<FileSecret>) {
    (internal_target(input), file_secret(input))
}

const MIB: usize = 1 << 20;

fn repeat_to(unit: &str, len: usize) -> String {
    unit.repeat(len / unit.len() + 1)
}

#[test]
fn pathological_inputs_stay_linear() {
    for unit in [
        "http://",
        "http:",
        "http:[",
        "http://[",
        "http://@",
        "a:",
        ":",
        "@",
        "%25",
        "%2525",
        "../",
        ". ",
        "..%",
        "http://a@",
        "x://",
        "[::",
        "id_rsa",
        "/etc",
        "%u002",
        "%c0",
        "http:\\",
        "\t",
        "a.",
        "0x7f.",
    ] {
        bounded(unit, &repeat_to(unit, MIB));
    }
    let long_userinfo = format!("http://{}@127.0.0.1/", "a".repeat(MIB));
    assert_eq!(bounded("userinfo", &long_userinfo).0, Some(Loopback));
    let long_host = format!("http://{}/", "a".repeat(MIB));
    assert_eq!(bounded("host", &long_host).0, None);
    let clean_tail = format!("{}http://10.0.0.1/", "word ".repeat(MIB / 5));
    assert_eq!(bounded("tail", &clean_tail).0, Some(Private));
    let ssh_segment = format!("id_rsa_{}.pub", "a".repeat(MIB));
    assert_eq!(bounded("segment", &ssh_segment).1, None);
    // Four extra levels of `%25` plus the final one: exactly the five rounds allowed.
    let deep: String = ["2e", "2e", "2f"].iter().map(|c| format!("%{}{c}", "25".repeat(4))).collect();
    assert_eq!(file_secret(&deep.repeat(MIB / deep.len())), Some(ParentSegment));
}
