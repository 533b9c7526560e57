//! A `User` spelling resolved to a uid the way dockerd and runc resolve it
//! (libcontainer's `GetExecUser`), so that no spelling the shim reads as
//! non-root runs as uid 0.
//!
//! How runc reads `user[:group]`:
//! - the spec is split on `:`; the first part is the user, the second the
//!   group, any further parts are ignored;
//! - an **empty** user part (`""`, `":"`, `":0"`, `":65534"`) is uid 0;
//! - a user part Go's `strconv.Atoi` reads (optional sign, ASCII digits) is
//!   that uid, with or without an `/etc/passwd` entry;
//! - anything else is a name, looked up in the container's `/etc/passwd`:
//!   the first line whose first field is the name wins, and a uid field Go
//!   cannot parse reads as **0** (libcontainer ignores conversion errors);
//!   no file, or no such line, and the container does not start.
//!
//! The shim applies that to the image's `/etc/passwd` (read by the caller)
//! and goes one step further: a name it resolved is *pinned*, forwarded as
//! `uid:gid`, so that a later change to the file (`docker cp`, a commit)
//! cannot turn the judged user into another. A name the shim cannot resolve
//! is not proved non-root, and every caller treats it as root.

use std::sync::Arc;

/// The image's (or container's) `/etc/passwd`, as the caller could read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Passwd {
    /// The file's bytes (symlinks followed).
    Read(Arc<[u8]>),
    /// The image has no `/etc/passwd`: no name resolves.
    Absent,
    /// The file could not be read; why.
    Unreadable(String),
}

/// What a `User` spelling comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// uid 0, and why (for the message).
    Root(String),
    /// A uid other than 0. `pinned` is the numeric spelling to forward in
    /// place of a name, when the spec named one.
    NonRoot { uid: i64, pinned: Option<String> },
    /// Cannot be proved non-root, and why; callers treat it as root.
    Unknown(String),
}

/// The highest uid runc accepts (`math.MaxInt32`).
const MAX_ID: i64 = i32::MAX as i64;

/// The user part of `spec` when it is a name that needs `/etc/passwd`:
/// not empty, not numeric. The caller reads the file only then.
pub fn lookup_name(spec: &str) -> Option<&str> {
    let user = user_part(spec);
    (!user.is_empty() && user != "root" && atoi(user).is_none()).then_some(user)
}

/// Resolves `spec` against `passwd` (needed only when [`lookup_name`] says so).
pub fn resolve(spec: &str, passwd: Option<&Passwd>) -> Resolved {
    let user = user_part(spec);
    if user.is_empty() {
        return Resolved::Root(format!("User {spec:?} has an empty user part, which runs as uid 0"));
    }
    if let Some(uid) = atoi(user) {
        return match uid {
            0 => Resolved::Root(format!("User {spec:?} is uid 0")),
            uid if !(0..=MAX_ID).contains(&uid) => Resolved::Unknown(format!("uid {user} is out of range")),
            uid => Resolved::NonRoot { uid, pinned: None },
        };
    }
    // The name `root` is root whatever a file says: there is nothing to
    // gain from looking, and a passwd that maps it elsewhere is a trick.
    if user == "root" {
        return Resolved::Root(format!("User {spec:?} is root"));
    }
    let file = match passwd {
        Some(Passwd::Read(file)) => file,
        Some(Passwd::Absent) => {
            return Resolved::Unknown(format!("the image has no /etc/passwd to resolve user {user:?}"));
        }
        Some(Passwd::Unreadable(why)) => {
            return Resolved::Unknown(format!("the image's /etc/passwd cannot be read ({why})"));
        }
        None => return Resolved::Unknown(format!("user {user:?} was not looked up")),
    };
    let Some(entry) = find_entry(file, user) else {
        return Resolved::Unknown(format!("user {user:?} is not in the image's /etc/passwd"));
    };
    match entry.uid {
        0 => Resolved::Root(format!("user {user:?} is uid 0 in the image's /etc/passwd")),
        uid if !(0..=MAX_ID).contains(&uid) => Resolved::Unknown(format!("user {user:?} has uid {uid}, out of range")),
        uid => {
            let group = match spec.split(':').nth(1) {
                Some(group) if !group.is_empty() => group.to_string(),
                _ => entry.gid.to_string(),
            };
            Resolved::NonRoot {
                uid,
                pinned: Some(format!("{uid}:{group}")),
            }
        }
    }
}

fn user_part(spec: &str) -> &str {
    spec.split(':').next().unwrap_or("")
}

/// Go's `strconv.Atoi`: an optional sign and ASCII digits, nothing else (no
/// spaces, no `_`), within i64.
fn atoi(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok()
}

struct Entry {
    uid: i64,
    gid: i64,
}

/// The first passwd line naming `name`, read as libcontainer reads it:
/// each line trimmed of ASCII space, blank lines skipped, fields split on
/// `:`, a numeric field Go cannot parse read as 0 (so does a missing one).
fn find_entry(file: &[u8], name: &str) -> Option<Entry> {
    file.split(|b| *b == b'\n').find_map(|line| {
        let line = line.trim_ascii();
        if line.is_empty() {
            return None;
        }
        let mut fields = line.split(|b| *b == b':');
        if fields.next()? != name.as_bytes() {
            return None;
        }
        let _password = fields.next();
        let number = |field: Option<&[u8]>| {
            field
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(atoi)
                .unwrap_or(0)
        };
        let uid = number(fields.next());
        let gid = number(fields.next());
        Some(Entry { uid, gid })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        \n\
        daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n\
        toor:x:0:0::/root:/bin/sh\n\
        app:x:1000:1001::/app:/bin/sh\n\
        app:x:0:0:second entry, never used:/:/bin/sh\n\
        garbled:x:abc:7::/:/bin/sh\n\
        short:x\n\
        huge:x:99999999999:1::/:/bin/sh\n  \
        spaced:x:42:42::/:/bin/sh  \n\
        # comment:x:5:5::/:/bin/sh\n";

    fn file() -> Passwd {
        Passwd::Read(Arc::from(PASSWD.as_bytes()))
    }

    fn root(spec: &str) -> bool {
        matches!(resolve(spec, Some(&file())), Resolved::Root(_))
    }

    #[test]
    fn empty_user_parts_are_root() {
        for spec in ["", ":", ":0", ":65534", "::", ":nogroup"] {
            assert!(root(spec), "{spec:?}");
        }
    }

    #[test]
    fn numeric_users_read_as_go_reads_them() {
        for spec in ["0", "+0", "-0", "00", "0:65534", "0:0:extra"] {
            assert!(root(spec), "{spec:?}");
        }
        for (spec, uid) in [("1000", 1000), ("+7", 7), ("65534:65534", 65534), ("0012", 12)] {
            assert_eq!(resolve(spec, None), Resolved::NonRoot { uid, pinned: None }, "{spec:?}");
        }
        for spec in ["-1", "2147483648", "99999999999999999999"] {
            assert!(matches!(resolve(spec, None), Resolved::Unknown(_)), "{spec:?}");
        }
        // Not numbers to Go: names, looked up.
        for spec in [" 0", "0 ", "1_000", "0x0", "٣"] {
            assert!(lookup_name(spec).is_some(), "{spec:?}");
        }
    }

    #[test]
    fn names_resolve_through_passwd_and_are_pinned() {
        assert!(root("root"));
        assert!(root("toor"));
        assert!(root("toor:1000"));
        // A uid field Go cannot parse, or a missing one, is 0.
        assert!(root("garbled"));
        assert!(root("short"));
        assert_eq!(
            resolve("app", Some(&file())),
            Resolved::NonRoot {
                uid: 1000,
                pinned: Some("1000:1001".into())
            }
        );
        // The first entry wins; an explicit group is kept.
        assert_eq!(
            resolve("app:staff", Some(&file())),
            Resolved::NonRoot {
                uid: 1000,
                pinned: Some("1000:staff".into())
            }
        );
        // Lines are trimmed, as libcontainer does.
        assert_eq!(
            resolve("spaced", Some(&file())),
            Resolved::NonRoot {
                uid: 42,
                pinned: Some("42:42".into())
            }
        );
        assert!(matches!(resolve("huge", Some(&file())), Resolved::Unknown(_)));
        // `#` starts no comment for libcontainer: the name is `# comment`.
        assert!(matches!(
            resolve("# comment", Some(&file())),
            Resolved::NonRoot { uid: 5, .. }
        ));
    }

    #[test]
    fn a_name_that_cannot_be_resolved_is_not_proved_non_root() {
        for passwd in [
            None,
            Some(Passwd::Absent),
            Some(Passwd::Unreadable("timed out".into())),
            Some(file()),
        ] {
            let resolved = resolve("nobody-here", passwd.as_ref());
            assert!(matches!(resolved, Resolved::Unknown(_)), "{passwd:?}: {resolved:?}");
        }
        // Root needs no file.
        assert!(matches!(resolve("root", None), Resolved::Root(_)));
    }

    #[test]
    fn only_names_need_the_file() {
        assert_eq!(lookup_name("app:1"), Some("app"));
        for spec in ["", ":", ":app", "1000", "-0", "1000:app", "root", "root:1"] {
            assert_eq!(lookup_name(spec), None, "{spec:?}");
        }
    }
}
