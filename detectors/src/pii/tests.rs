use super::PiiKind::*;
use super::*;

mod fuzz;

fn scan_with(text: &str, scope: Scope) -> Vec<PiiMatch> {
    let mut out = Vec::new();
    PiiScanner::new().scan(text, scope, &mut out);
    out
}

fn scan(text: &str) -> Vec<PiiMatch> {
    scan_with(text, Scope::ALL)
}

fn found(text: &str) -> Vec<(PiiKind, &str)> {
    scan(text).into_iter().map(|m| (m.kind, &text[m.start..m.end])).collect()
}

const KEY_BODY: &str =
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";

const PGP_KEY: &str =
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBFx0AAEIAK\n=Ab1x\n-----END PGP PRIVATE KEY BLOCK-----";

/// (text, kind, the exact value expected).
const POSITIVES: &[(&str, PiiKind, &str)] = &[
    ("password reset sent to maria.silva@example.com", Email, "maria.silva@example.com"),
    ("sms dispatched to +14155552671 ok", Phone, "+14155552671"),
    ("call +1 415-555-2671 now", Phone, "+1 415-555-2671"),
    ("office +44 20 7946 0958.", Phone, "+44 20 7946 0958"),
    ("call +1 (415) 555-2671 now", Phone, "+1 (415) 555-2671"),
    ("uk office +44 (0)20 7946 0958.", Phone, "+44 (0)20 7946 0958"),
    ("kyc check ssn=123-45-6789 passed", Ssn, "123-45-6789"),
    ("ssn 123 45 6789", Ssn, "123 45 6789"),
    ("social security number: 123456789", Ssn, "123456789"),
    ("charge failed card=4111111111111111", Card, "4111111111111111"),
    ("card 4111 1111 1111 1111", Card, "4111 1111 1111 1111"),
    ("amex 3782-822463-10005", Card, "3782-822463-10005"),
    ("mc 5555-5555-5555-4444 ok", Card, "5555-5555-5555-4444"),
    ("mir 2200700000000009 declined", Card, "2200700000000009"),
    ("uatp 135410014004955 ok", Card, "135410014004955"),
    ("rupay 8172000000000005 ok", Card, "8172000000000005"),
    ("troy 9792000000000003 ok", Card, "9792000000000003"),
    ("boto init key=AKIAIOSFODNN7EXAMPLE region=us-east-1", AwsKey, "AKIAIOSFODNN7EXAMPLE"),
    (r#"{"aws_access_key_id":"AKIAIOSFODNN7EXAMPLE"}"#, AwsKey, "AKIAIOSFODNN7EXAMPLE"),
    ("calling llm with sk-a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6", OpenaiKey, "sk-a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"),
    ("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", OpenaiKey, "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
    ("sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", OpenaiKey, "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
    ("stripe client sk_live_51HqLyjWDarjtT1zdp7dcXyZ0123456789", StripeKey, "sk_live_51HqLyjWDarjtT1zdp7dcXyZ0123456789"),
    ("token: ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R", GithubToken, "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R"),
    (
        "pat=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF",
        GithubToken,
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF",
    ),
    (
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        SlackToken,
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    ("app xapp-1-A0123456789-1234567890-abcdef0123", SlackToken, "xapp-1-A0123456789-1234567890-abcdef0123"),
    (
        "auth header Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        Jwt,
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    ("unsigned eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. end", Jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."),
    ("no dot eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0", Jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0"),
    (
        "loaded -----BEGIN RSA PRIVATE KEY----- MIIEpAIBAAKCAQEA",
        PrivateKey,
        "-----BEGIN RSA PRIVATE KEY----- MIIEpAIBAAKCAQEA",
    ),
    (KEY_BODY, PrivateKey, KEY_BODY),
    ("connecting to postgres://app:hunter2@db.prod:5432/main", Dsn, "postgres://app:hunter2@db.prod:5432"),
    ("ftp://a:b@c", Dsn, "ftp://a:b@c"),
    ("broker=amqp://guest:s3cr3t@rabbit", Dsn, "amqp://guest:s3cr3t@rabbit"),
    ("uri: mongodb+srv://svc:Pa55w0rd@cluster0.x.net/db", Dsn, "mongodb+srv://svc:Pa55w0rd@cluster0.x.net"),
    ("REDIS_URL=redis://:s3cretpass@cache:6379", Dsn, "redis://:s3cretpass@cache:6379"),
    // An unescaped `@` in the password: the host is after the last one.
    ("db=postgresql://u:p@ss:w0rd@h/db", Dsn, "postgresql://u:p@ss:w0rd@h"),
    // Connection strings: a JDBC password parameter, ADO.NET and libpq keyword/value.
    (
        "url=jdbc:postgresql://db:5432/app?user=admin&password=Tr0ub4dor&ssl=true",
        Dsn,
        "jdbc:postgresql://db:5432/app?user=admin&password=Tr0ub4dor",
    ),
    (
        "jdbc:sqlserver://sql1:1433;databaseName=crm;user=sa;password=S3cr3t!x;",
        Dsn,
        "jdbc:sqlserver://sql1:1433;databaseName=crm;user=sa;password=S3cr3t!x",
    ),
    (
        "cs: Server=tcp:sql.prod,1433;Initial Catalog=crm;User ID=sa;Password=Winter2026!;Encrypt=True",
        Dsn,
        "Server=tcp:sql.prod,1433;Initial Catalog=crm;User ID=sa;Password=Winter2026!",
    ),
    ("PWD=hunter22;SERVER=db01;UID=app", Dsn, "PWD=hunter22;SERVER=db01"),
    ("cs: Server=db;Password=\"se;cret\";Encrypt=True", Dsn, "Server=db;Password=\"se;cret\""),
    ("PWD={S3c;ret};SERVER=db01", Dsn, "PWD={S3c;ret};SERVER=db01"),
    ("dsn host=db password='s3 cr3t' dbname=x", Dsn, "host=db password='s3 cr3t'"),
    ("dsn host=db.internal port=5432 user=app password=s3cr3tpw dbname=x", Dsn, "host=db.internal port=5432 user=app password=s3cr3tpw"),
    ("refresh xoxe.xoxp-1-Mi0yLTE3NjEyODk1", SlackToken, "xoxe.xoxp-1-Mi0yLTE3NjEyODk1"),
    (PGP_KEY, PrivateKey, PGP_KEY),
    ("k=-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk=\n\nnext", PrivateKey, "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk="),
    ("payout to 0x52908400098527886E0F7030069857D2E4169EE7", EthAddress, "0x52908400098527886E0F7030069857D2E4169EE7"),
];

#[test]
fn every_regex_compiles() {
    for p in secrets::PATTERNS.iter().chain(personal::PATTERNS.iter()) {
        assert!(regex::Regex::new(p).is_ok(), "{p}");
    }
}

#[test]
fn positives_are_found_exactly() {
    for &(text, kind, value) in POSITIVES {
        assert_eq!(found(text), vec![(kind, value)], "{text}");
    }
}

#[test]
fn negatives_are_not_found() {
    let hex64 = format!("hash 0x{} end", "ab12".repeat(16));
    let negatives = [
        "order 4111111111111112 shipped",
        "trace 4111-2222-3333-4444 not a card",
        "request id 123e4567-e89b-12d3-a456-426614174000 done",
        "build 2026.11.22 sha 5f2b9c1e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c",
        "price 1234567890123 in minor units",
        "at 1767225600009 ms",
        "at 1767225600000008 us",
        "tracking 7000000000000005 shipped",
        "ref 9000000000000001 ok",
        &hex64,
        "key AKIAXXXXXXXXXXXXXXXX here",
        "xAKIAIOSFODNN7EXAMPLE",
        "AKIAIOSFODNN7EXAMPLEX",
        &format!("token ghp_{}", "x".repeat(36)),
        &format!("key sk-{}", "x".repeat(30)),
        &format!("key sk-proj-{}", "X".repeat(30)),
        "ssn 000-12-3456",
        "ssn 666-12-3456",
        "ssn 900-12-3456",
        "ssn 123-00-4567",
        "ssn 123-45-0000",
        "id 1-123-45-6789",
        "plain 123456789 without keyword",
        "eyJhbGciOiJIUzI1NiJ9garbage.eyJnotjson.sig",
        "eyJmb28.eyJiYXI.sig",
        "see https://example.com/path@v2",
        "postgres://app@db",
        "postgres://app:****@db",
        "postgres://app:<password>@db",
        "postgres://app:${PASSWORD}@db",
        "the sk-learn library",
        "Dan called +1",
        "ratio +1 (2) 34 or +1 (415) 55",
        "version 1e+10 and v+12345678",
        "card 4111111111111111abc",
        "sum 1.4111111111111111",
        "zero 0x0000000000000000000000000000000000000000",
        "-----BEGIN PUBLIC KEY----- MIIBIjANBgkqh",
        "xoxb-xxxxxxxxxxxxxxxx",
        // Connection strings whose password is a placeholder or absent, and
        // password talk without a server.
        "Server=db01;User ID=sa;Password=****;",
        "host=db password=${DB_PASSWORD}",
        "jdbc:postgresql://db/app?user=admin&password=<secret>",
        "user reset their password=true flag",
        "Server=db01;User ID=sa;Password={password};",
        "Server=db01;User ID=sa;Password={{db_password}};",
        "Server=db01;Password=\"\";Encrypt=True",
        "host=db password='{0}' dbname=x",
        "Server=db01;Password=\"<secret>\";",
        r#"cs = "Server=db01;Password=\"\";""#,
        "<add cs=\"Server=db01;Password=&quot;&quot;;\" />",
        // logfmt: a working directory, and passwords a logger already removed.
        "level=info host=web-1 msg=\"request done\" pwd=/srv/app",
        "level=warn host=web-1 msg=\"login failed\" user=bob password=[FILTERED]",
        "host=web-1 msg=\"x\" password=\"REDACTED\"",
        // A code comment is no scheme-relative URL; short parenthesised numbers are no phones.
        "see https://example.com x = 1; //TODO:fix@later",
        "score +1 (2) 345678 and +3 (12) 4567 89",
        "the password policy requires 12 characters",
    ];
    for text in negatives {
        assert_eq!(found(text), vec![], "{text}");
    }
}

#[test]
fn clean_text_runs_nothing() {
    let p = prefilter::Prefilter::new();
    assert!(p.hits("user logged in from the mobile app, 3 items, 12345678 bytes", Scope::ALL).is_empty());
    assert!(p.hits("card 4111 1111 1111 1111", Scope::ALL).contains(Card));
    assert!(!p.hits("an email a@b.co", Scope::SECRETS_CARDS_SSN).contains(Email));
}

#[test]
fn scope_limits_kinds() {
    assert_eq!(scan_with("mail maria@example.com +14155552671", Scope::SECRETS_CARDS_SSN), vec![]);
    let eth = "0x52908400098527886E0F7030069857D2E4169EE7";
    assert_eq!(scan_with(eth, Scope::SECRETS_CARDS_SSN), vec![]);
    let card = scan_with("card=4111111111111111", Scope::SECRETS_CARDS_SSN);
    assert_eq!(card.iter().map(|m| m.kind).collect::<Vec<_>>(), vec![Card]);
    let ssn = scan_with("ssn=123-45-6789", Scope::SECRETS_CARDS_SSN);
    assert_eq!(ssn.iter().map(|m| m.kind).collect::<Vec<_>>(), vec![Ssn]);
    for kind in PiiKind::ALL {
        let narrow = !matches!(kind, Email | Phone | EthAddress);
        assert_eq!(Scope::SECRETS_CARDS_SSN.contains(kind), narrow, "{kind:?}");
        assert!(Scope::ALL.contains(kind));
        assert_eq!(kind.is_secret(), narrow && !matches!(kind, Card | Ssn));
    }
}

/// Connection strings as drivers read them: every password in one (a repeated
/// key, `sslpassword`, `SSL Password`), with `@`, `;`, `&`, `#` or spaces in
/// it, is inside the finding's span and absent from its preview.
#[test]
fn no_part_of_a_connection_strings_password_survives() {
    let cases: &[(&str, &[&str])] = &[
        (
            "jdbc:sqlserver://srv.database.windows.net:1433;database=db;user=admin@srv;password=S3cretPw;encrypt=true",
            &["S3cretPw"],
        ),
        ("jdbc:sqlserver://sql1:1433;user=sa;password=Winter@2026x", &["Winter", "2026x"]),
        ("host=db sslpassword=keypass password=S3cretPw", &["keypass", "S3cretPw"]),
        ("Host=db;Username=u;SSL Password=keypass;Password=S3cretPw", &["keypass", "S3cretPw"]),
        ("jdbc:postgresql://db/app?sslpassword=keypass&password=S3cretPw", &["keypass", "S3cretPw"]),
        (
            "jdbc:postgresql://db/app?trustCertificateKeyStorePassword=changeit&user=u&password=S3cretPw",
            &["changeit", "S3cretPw"],
        ),
        ("redis://:ab;cdefgh@cache:6379", &["ab;cdefgh", "cdefgh"]),
        ("postgres://u:pa;ssword@db/x", &["pa;ssword", "ssword"]),
        ("Server=db;Password=ab&cdefgh;", &["cdefgh"]),
        ("PWD=ab#cdefgh;SERVER=db01", &["cdefgh"]),
        ("jdbc:sqlserver://db;user=sa;password=P#ssw0rd;", &["ssw0rd"]),
        ("Server=db;Password=correct horse battery;", &["correct", "horse", "battery"]),
        ("host=db password=s3cr3tpw123 dbname=x password=other9", &["s3cr3tpw123", "other9"]),
        ("log: Server=db;Password=first1;Encrypt=True then text", &["first1"]),
        // A quote, `<` or `#` inside a value belongs to it; a user may be an email.
        ("Server=db;Password=S3cret\"Pw9XYZ\";", &["S3cret", "Pw9XYZ"]),
        ("Server=db;Password=S3cret'Pw9XYZ';", &["S3cret", "Pw9XYZ"]),
        ("Server=db;Password=S3cret<Pw9XYZ>;", &["S3cret", "Pw9XYZ"]),
        ("host=db password=S3cret'Pw9XYZ'", &["S3cret", "Pw9XYZ"]),
        ("jdbc:postgresql://db/app?user=u&password=hunter#2pwXYZ", &["hunter", "2pwXYZ"]),
        ("<add cs=\"Server=db;Password=Qx7Zk9\" /> <next a=\"b\"/>", &["Qx7Zk9"]),
        ("{\"cs\": \"Server=db;Password=Qx7Zk9\", \"n\": 1}", &["Qx7Zk9"]),
        ("Server=db;ConnectionPassword=Qx7Zk9Lm;", &["Qx7Zk9Lm"]),
        ("postgres://maria.silva@example.com:hunter2pw@db/x", &["hunter2pw", "maria.silva"]),
        ("azure postgres://admin@srv:Qx7Zk9@srv.postgres.database.azure.com/db", &["Qx7Zk9"]),
        ("Server=db Port=1433;Password=Qx7 Zk9;", &["Qx7", "Zk9"]),
        // Quotes escaped inside a string literal or markup.
        (r#"var cs = "Server=db;User ID=sa;Password=\"Qx7;Zk9 Lm2\";";"#, &["Qx7", "Zk9", "Lm2"]),
        ("<add cs=\"Server=db;Password=&quot;Qx7;Zk9&quot;;\" />", &["Qx7", "Zk9"]),
        (r#"{"log":"host=db password=\'Qx7 Zk9\' dbname=x"}"#, &["Qx7", "Zk9"]),
        // A second URL right after a first one's host, with no scheme left to start it.
        ("proxy https://u:Qx7Zk9@https://v:Lm2Wp4@h/x", &["Qx7Zk9", "Lm2Wp4"]),
        ("see http://mirror.example//svc:Qx7Zk9@db.internal/x", &["Qx7Zk9"]),
        // Quoted values hold `;`, spaces and their own escaped quotes.
        ("Server=db;User ID=sa;Password=\"Qx7;Zk9 Lm2\";Encrypt=True", &["Qx7", "Zk9", "Lm2"]),
        ("Server=db;Password=\"Qx7\"\"Zk9\";", &["Qx7", "Zk9"]),
        // A connection string in a CSV cell: its quotes are doubled.
        ("row: 1,\"Server=db;Password=\"\"Qx7;Zk9\"\";Database=x\",ok", &["Qx7", "Zk9"]),
        ("row: 1,\"Server=db;Password=\"\"Qx7 Zk9\"\"\",ok", &["Qx7", "Zk9"]),
        ("Password='Qx7;''Zk9';Server=db", &["Qx7", "Zk9"]),
        (
            "Driver={ODBC Driver 18 for SQL Server};Server=tcp:db,1433;Uid=sa;Pwd={Qx7;Zk9}};Lm2};Encrypt=yes",
            &["Qx7", "Zk9", "Lm2"],
        ),
        ("host=db.internal user=app password='Qx7 Zk9\\'Lm2' dbname=x", &["Qx7", "Zk9", "Lm2"]),
        ("host=db password='Qx7;Zk9' dbname=x and password=later", &["Qx7", "Zk9"]),
        ("jdbc:sqlserver://db:1433;user=sa;password={Qx7;Zk9};encrypt=true", &["Qx7", "Zk9"]),
        ("<add connectionString=\"Server=db;User Id=sa;Password='Qx7;Zk9';\" />", &["Qx7", "Zk9"]),
        ("Server=db;Application Name=\"pwd=Lm2\";Password=Qx7", &["Qx7"]),
    ];
    for &(text, secrets) in cases {
        let found = scan(text);
        assert!(found.iter().any(|m| m.kind == Dsn), "{text}: {found:?}");
        let redacted = redact(text, &found);
        for m in &found {
            let preview = mask(m.kind, &text[m.start..m.end]);
            for secret in secrets {
                assert!(!preview.contains(secret), "{text}: preview {preview}");
            }
        }
        for secret in secrets {
            assert!(!redacted.contains(secret), "{text}: redacted {redacted}");
        }
    }
}

#[test]
fn dsn_beats_email_inside_it() {
    let text = "dsn postgres://app:pw@db.prod.example.com/main and ops@example.com";
    let kinds: Vec<_> = found(text);
    assert_eq!(kinds, vec![(Dsn, "postgres://app:pw@db.prod.example.com"), (Email, "ops@example.com")]);
}

#[test]
fn mask_never_shows_the_value() {
    for &(_, kind, value) in POSITIVES {
        let m = mask(kind, value);
        assert!(!m.contains(value), "{kind:?}: {m}");
        let n = value.chars().count();
        if kind == Dsn {
            // At most the first 3 and last 4 characters, and none of a password.
            let mut end = value.len();
            let passwords = dsn::passwords(value, 0, &mut end);
            assert!(!passwords.is_empty(), "{value}");
            let (head, tail) = m.split_once('…').expect("head…tail");
            assert!(value.starts_with(head) && head.chars().count() <= 3, "{m}");
            assert!(value.ends_with(tail) && tail.chars().count() <= 4, "{m}");
            let tail_at = value.len() - tail.len();
            for (s, e) in passwords {
                assert!(head.is_empty() || s >= head.len(), "{m}: head inside a password");
                assert!(tail.is_empty() || e <= tail_at, "{m}: tail inside a password");
            }
        } else if kind.is_secret() && n > 8 {
            let middle: String = value.chars().skip(3).take(n - 8).collect();
            assert!(!m.contains(&middle), "{kind:?}: {m}");
        }
    }
    assert_eq!(mask(AwsKey, "AKIAIOSFODNN7EXAMPLE"), "AKI…MPLE");
    assert_eq!(mask(OpenaiKey, "sk-a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6abcd"), "sk-…abcd");
    // A connection string: the first 3 and last 4 characters, as any secret,
    // less an end that would show a character of a password.
    assert_eq!(mask(Dsn, "postgres://app:hunter2@db.prod:5432"), "pos…5432");
    assert_eq!(mask(Dsn, "postgresql://u:p@ss:w0rd@h"), "pos…", "the tail is the password's");
    assert_eq!(mask(Dsn, "jdbc:postgresql://db/app?user=admin&password=Tr0ub4dor"), "jdb…");
    assert_eq!(mask(Dsn, "PWD=hunter22;SERVER=db01"), "PWD…db01");
    assert_eq!(mask(Dsn, "postgres://maria.silva@example.com:pw@db"), "pos…");
    assert_eq!(mask(Dsn, "Server=db;User Id=123-45-6789;Password=x"), "Ser…");
    assert_eq!(mask(Dsn, "Server=db;Password=\"se;cret\""), "Ser…");
    assert_eq!(mask(Dsn, "PWD={S3c;ret};SERVER=db01"), "PWD…db01");
    assert_eq!(mask(Dsn, "host=db password='s3 cr3t'"), "hos…");
    assert_eq!(mask(Dsn, "ftp://a:b@c"), "ftp…", "no tail for a short one");
    assert_eq!(mask(PrivateKey, KEY_BODY), "[OPENSSH PRIVATE KEY]");
    assert_eq!(mask(Ssn, "123-45-6789"), "***-**-6789");
    assert_eq!(mask(Card, "4111 1111 1111 1111"), "**** 1111");
    assert_eq!(mask(Email, "maria.silva@example.com"), "m***@example.com");
    assert_eq!(mask(Phone, "+14155552671"), "+*******2671");
    assert_eq!(mask(EthAddress, "0x52908400098527886E0F7030069857D2E4169EE7"), "0x5…9EE7");
    assert_eq!(mask(Jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.abcd"), "eyJ…abcd");
    assert_eq!(mask(AwsKey, "short12"), "…12");
    assert_eq!(mask(AwsKey, "abc"), "***");
    assert_eq!(mask(Email, "ü@exämple.com"), "ü***@exämple.com");
}

#[test]
fn redact_removes_every_positive() {
    let scanner = PiiScanner::new();
    for &(text, kind, value) in POSITIVES {
        let mut matches = Vec::new();
        scanner.scan(text, Scope::ALL, &mut matches);
        let red = redact(text, &matches);
        assert!(!red.contains(value), "{red}");
        assert!(red.contains(&format!("[REDACTED:{}]", kind.name())), "{red}");
    }
    assert!(!redact(KEY_BODY, &scan(KEY_BODY)).contains("b3BlbnNzaC1rZXktdjEAAAAA"));
}

#[test]
fn redact_skips_bad_matches() {
    let text = "añb secret";
    let bad = [
        PiiMatch { kind: Email, start: 2, end: 3 },  // inside `ñ`
        PiiMatch { kind: Email, start: 5, end: 99 }, // out of range
        PiiMatch { kind: Email, start: 5, end: 11 },
        PiiMatch { kind: Email, start: 6, end: 8 }, // overlaps the previous
    ];
    assert_eq!(redact(text, &bad), "añb [REDACTED:email]");
}

#[test]
fn multibyte_text_around_matches() {
    let text = "ünïcödé maria@exämple.com ✓";
    assert_eq!(found(text), vec![(Email, "maria@exämple.com")]);
    assert_eq!(
        found("电话 +14155552671 ✓ карта 4111111111111111"),
        vec![(Phone, "+14155552671"), (Card, "4111111111111111")]
    );
}

/// Values a reader sees as plain ASCII, written so a byte search misses them:
/// found whole, as spans of the original text, and masked as typed.
#[test]
fn disguised_values_are_found_and_masked_as_typed() {
    let cases: &[(&str, PiiKind, &str, &str)] = &[
        ("card=４１１１１１１１１１１１１１１１ ok", Card, "４１１１１１１１１１１１１１１１", "**** 1111"),
        ("card 4111\u{A0}1111\u{A0}1111\u{A0}1111.", Card, "4111\u{A0}1111\u{A0}1111\u{A0}1111", "**** 1111"),
        ("mc 5555\u{2013}5555\u{2013}5555\u{2013}4444", Card, "5555\u{2013}5555\u{2013}5555\u{2013}4444", "**** 4444"),
        ("ssn=１２３－４５－６７８９", Ssn, "１２３－４５－６７８９", "***-**-6789"),
        ("key=AKIA\u{200B}IOSFODNN7EXAMPLE end", AwsKey, "AKIA\u{200B}IOSFODNN7EXAMPLE", "AKI…MPLE"),
        ("ｓｋ－ａ1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6", OpenaiKey, "ｓｋ－ａ1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6", "sk-…o5P6"),
        ("to ｍａｒｉａ＠ｅｘａｍｐｌｅ．ｃｏｍ", Email, "ｍａｒｉａ＠ｅｘａｍｐｌｅ．ｃｏｍ", "m***@example.com"),
        ("to maria\u{200B}.silva@example.com", Email, "maria\u{200B}.silva@example.com", "m***@example.com"),
        ("call +1\u{202F}415\u{202F}555\u{202F}2671", Phone, "+1\u{202F}415\u{202F}555\u{202F}2671", "+*******2671"),
        ("postgres://app:hunter2\u{00AD}x@db/main", Dsn, "postgres://app:hunter2\u{00AD}x@db", "pos…"),
    ];
    for &(text, kind, value, preview) in cases {
        assert_eq!(found(text), vec![(kind, value)], "{text:?}");
        assert_eq!(mask(kind, value), preview, "{text:?}");
    }
    // The same card fingerprints alike however it is written: the detector
    // hashes the canonical value, which is the plain one, and of a number
    // written with free separators only its digits.
    assert_eq!(canonical("４１１１\u{A0}1111"), "4111 1111");
    for card in
        ["4111 1111 1111 1111", "4111-1111-1111-1111", "４１１１\u{A0}1111\u{2013}1111 1111", "4111111111111111"]
    {
        assert_eq!(fingerprint_form(Card, card), "4111111111111111", "{card:?}");
    }
    assert_eq!(fingerprint_form(Ssn, "１２３－４５－６７８９"), "123456789");
    assert_eq!(fingerprint_form(Phone, "+1\u{202F}415\u{202F}555\u{202F}2671"), "14155552671");
    assert_eq!(fingerprint_form(Email, "Maria.Silva@Example.COM"), "Maria.Silva@example.com");
    assert_eq!(fingerprint_form(AwsKey, "AKIA\u{200B}IOSFODNN7EXAMPLE"), "AKIAIOSFODNN7EXAMPLE");
    // Folding does not make numbers out of text that holds none, and a
    // full-width number still has to pass Luhn.
    for text in ["Grüße aus Köln, ①②③", "trace ４１１１１１１１１１１１１１１２", "ｖｅｒｓｉｏｎ　１．２．３"]
    {
        assert_eq!(found(text), vec![], "{text:?}");
    }
    let red = redact("card=４１１１１１１１１１１１１１１１ ok", &scan("card=４１１１１１１１１１１１１１１１ ok"));
    assert_eq!(red, "card=[REDACTED:card] ok");
}

/// A secret is never hidden inside another finding: personal data holding one
/// is that secret; one inside a connection string is listed beside it.
#[test]
fn a_secret_inside_another_finding_is_reported_as_itself() {
    const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let remote = format!("remote https://{TOKEN}@github.com/o/r.git");
    assert_eq!(found(&remote), vec![(GithubToken, TOKEN)]);
    // A URL's user with no password is no email address; one that is an
    // address, before a password, still is.
    assert_eq!(found("retrying postgres://app@db.internal:5432/app"), vec![]);
    assert_eq!(found("see ftp://maria@example.com/pub ok"), vec![]);
    let at = format!("key {TOKEN}@example.com");
    assert_eq!(found(&at), vec![(GithubToken, &at[4..])]);
    for (text, dsn) in [
        (
            format!("git clone https://{TOKEN}:x-oauth-basic@github.com/o/r"),
            format!("https://{TOKEN}:x-oauth-basic@github.com"),
        ),
        (format!("https://oauth2:{TOKEN}@github.com"), format!("https://oauth2:{TOKEN}@github.com")),
    ] {
        assert_eq!(found(&text), vec![(Dsn, dsn.as_str()), (GithubToken, TOKEN)], "{text}");
        assert!(!redact(&text, &scan(&text)).contains(&TOKEN[4..]), "{text}");
    }
    // Oracle's `user/password@host`.
    let oracle = "url=jdbc:oracle:thin:scott/TigerPw4455@db.prod:1521:ORCL next";
    assert_eq!(found(oracle), vec![(Dsn, "jdbc:oracle:thin:scott/TigerPw4455@db.prod:1521:ORCL")]);
    assert_eq!(mask(Dsn, &oracle[4..oracle.len() - 5]), "jdb…ORCL");
    assert_eq!(found("jdbc:oracle:thin:@db.prod:1521:ORCL"), vec![], "no user, no password");
    // Slack's other `xox?-` tokens, and prefixed tokens glued on by `_`.
    assert_eq!(found("tok xoxc-123456789012-123456789012-0123456789abcdef").len(), 1);
    assert_eq!(found("v KEY_AKIAIOSFODNN7EXAMPLE e"), vec![(AwsKey, "AKIAIOSFODNN7EXAMPLE")]);
    assert_eq!(found("v KEYAKIAIOSFODNN7EXAMPLE e"), vec![], "a letter before is part of a longer token");
}

/// Review findings on disguised text: a connection string is masked as found,
/// a format character after punctuation still triggers the folded search, and
/// a folded finding overlapping another is redacted with it.
#[test]
fn disguises_leave_no_part_of_a_value_in_previews_or_samples() {
    for (text, tail) in [
        ("Server=db;Password=Pa\u{FF1B}ssw0rdXYZ;User=x", "ssw0rdXYZ"),
        ("jdbc:mysql://db/x?user=a&password=Pa\u{FF06}ssw0rdXYZ&x=1", "ssw0rdXYZ"),
        ("host=db password=Pa\u{3000}ssw0rdXYZ", "ssw0rdXYZ"),
        ("host=db password=abc\u{A0}zzsecret", "zzsecret"),
        // No-break spaces glue, so a URL's password runs on through them.
        ("conn https://admin:pa\u{A0}ssw0rd99@db.example.com:5432/app", ":pa"),
        ("https://admin:pa\u{202F}ssw0rd99@db.example.com", ":pa"),
        ("https://admin:pa\u{2007}ssw0rd99@db.example.com", ":pa"),
        ("jdbc:postgresql://db/app?user=a&password=pa\u{A0}ssw0rd99&ssl=true", "ssw0rd99"),
        ("conn https://admin:pa\u{3000}ssw0rd99@db.example.com", ":pa"),
        ("https://admin:pa\u{2009}ssw0rd99@db.example.com/x", ":pa"),
        ("jdbc:oracle:thin:scott/ti\u{A0}ger99@db.example.com:1521:orcl", "/ti"),
        ("jdbc:oracle:thin:scott/2024\u{A0}ger99@db.example.com:1521:orcl", "2024"),
    ] {
        let m = scan(text);
        assert!(!m.is_empty(), "{text:?}");
        for f in &m {
            let preview = mask(f.kind, &text[f.start..f.end]);
            assert!(!preview.contains(tail), "{text:?}: {preview}");
        }
        assert!(!redact(text, &m).contains(tail), "{text:?}");
    }
    for (text, kind) in [
        ("ghp_\u{200B}ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", GithubToken),
        ("sk-\u{200B}proj-AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHH1234", OpenaiKey),
        ("sent to maria@\u{200B}example.com", Email),
        ("card 4111-\u{200B}1111-1111-1111", Card),
        ("sent to maria\u{FE6B}example.com", Email),
    ] {
        assert_eq!(scan(text).iter().map(|m| m.kind).collect::<Vec<_>>(), vec![kind], "{text:?}");
    }
    let text = "+1 415 555 2671\u{200B}john.d\u{200B}oe@example.com";
    let red = redact(text, &scan(text));
    assert!(!red.contains("john") && !red.contains("oe@"), "{red}");
}

/// Text glued to a URL by Unicode spaces is not its password: a port or prose
/// before the space, a second space, or a space at either end ends the reading.
#[test]
fn words_after_a_url_are_no_password() {
    let nb = |s: &str| s.replace('~', "\u{A0}");
    assert_eq!(
        found(&nb("App up at http://localhost:3000~—~log~in~as~admin@example.com")),
        vec![(Email, "admin@example.com")]
    );
    assert_eq!(found(&nb("see http://example.com:8080~bob@example.org")), vec![(Email, "bob@example.org")]);
    assert_eq!(found(&nb("redis://cache:6379~—~owner~ops@example.com")), vec![(Email, "ops@example.com")]);
    assert_eq!(found(&nb("[docs](https://example.com:443)~mail~me@example.com")), vec![(Email, "me@example.com")]);
    assert_eq!(found(&nb("Follow https://twitter.com:~@wardensec")), vec![]);
    assert_eq!(found(&nb("a http://wiki.example.com:Main~~Page~x@y.io")), vec![(Email, "x@y.io")]);
    assert_eq!(found(&nb("see http://localhost:3000\u{2026}~ask~bob@example.com")), vec![(Email, "bob@example.com")]);
    let cjk = "詳細はhttp://localhost:3000を参照\u{3000}問い合わせはsupport@example.com";
    assert_eq!(found(cjk).iter().map(|f| f.0).collect::<Vec<_>>(), vec![Email], "no dsn");
    let thin = "a http://wiki.example.com:Main\u{2009}Page\u{2009}by\u{2009}bob@example.com";
    assert_eq!(found(thin), vec![(Email, "bob@example.com")]);
    assert_eq!(
        found(&nb("postgres://app:s3cretPw@db.internal~→~owner@example.com")),
        vec![(Dsn, "postgres://app:s3cretPw@db.internal"), (Email, "owner@example.com")]
    );
}

/// Numbers a space apart read as one run of digit groups; each is still found.
#[test]
fn adjacent_numbers_are_each_found() {
    assert_eq!(found("+14155552671 123-45-6789"), vec![(Phone, "+14155552671"), (Ssn, "123-45-6789")]);
    assert_eq!(found("card 4111111111111111 078-05-1120"), vec![(Card, "4111111111111111"), (Ssn, "078-05-1120")]);
    assert_eq!(found("ssn 123-45-6789 4111 1111 1111 1111"), vec![(Ssn, "123-45-6789"), (Card, "4111 1111 1111 1111")]);
    assert_eq!(found("call +1 415 555 2671 123-45-6789"), vec![(Phone, "+1 415 555 2671"), (Ssn, "123-45-6789")]);
    // Still no SSN inside a dashed number, nor among space-joined groups.
    assert_eq!(found("part 12-123-45-6789 ok"), vec![]);
    assert_eq!(found("order 555 123 45 6789"), vec![]);
}

#[test]
fn several_findings_in_one_text() {
    let text = "cards=4111111111111111,5555555555554444; mail a@b.io key AKIAIOSFODNN7EXAMPLE";
    let want = vec![
        (Card, "4111111111111111"),
        (Card, "5555555555554444"),
        (Email, "a@b.io"),
        (AwsKey, "AKIAIOSFODNN7EXAMPLE"),
    ];
    assert_eq!(found(text), want);
}

#[test]
fn appends_after_existing_findings() {
    let mut out = vec![PiiMatch { kind: Card, start: 100, end: 120 }];
    PiiScanner::default().scan("key AKIAIOSFODNN7EXAMPLE", Scope::ALL, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], PiiMatch { kind: AwsKey, start: 4, end: 24 });
}

#[test]
fn luhn_and_names() {
    assert!(personal::luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
    assert!(!personal::luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
    let names: Vec<_> = PiiKind::ALL.iter().map(|k| k.name()).collect();
    assert!(names.iter().all(|n| n.bytes().all(|c| c.is_ascii_lowercase() || c == b'_')));
    assert_eq!(PiiKind::ALL.iter().filter(|k| k.is_secret()).count(), 8);
}
