//! Reading systemd units as systemd does, for `install`: the unit file by
//! the search path's precedence, its drop-ins, assignments with resets
//! (`ExecStart=` empties the list), and an `ExecStart` line split into
//! words with its `$VAR`s expanded from `Environment=` and
//! `EnvironmentFile=`. Pure but for the reads under the root.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The unit search path, highest precedence first (relative to the root).
pub const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// One `key=value` of a unit file, in the order read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub section: String,
    pub key: String,
    pub value: String,
}

/// A unit as loaded: its file, its drop-ins in the order applied, and every
/// assignment of them all in that order.
#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    pub file: PathBuf,
    pub dropins: Vec<PathBuf>,
    pub assignments: Vec<Assignment>,
}

#[derive(Debug)]
pub enum Found {
    Unit(Unit),
    Masked(PathBuf),
    Missing,
}

/// Parses one unit file's text: sections, `key=value`, comments (`#`, `;`),
/// and lines continued with a trailing backslash.
pub fn parse(text: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';') || line.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let whole = std::mem::take(&mut pending);
        let whole = whole.trim();
        if whole.starts_with('[') && whole.ends_with(']') {
            section = whole[1..whole.len() - 1].to_string();
            continue;
        }
        if let Some((key, value)) = whole.split_once('=') {
            out.push(Assignment {
                section: section.clone(),
                key: key.trim().to_string(),
                value: value.trim().to_string(),
            });
        }
    }
    out
}

/// The values `key` ends with in `section`: each assignment adds one, an
/// empty one clears those before it (systemd's list semantics).
pub fn values(assignments: &[Assignment], section: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for a in assignments.iter().filter(|a| a.section == section && a.key == key) {
        if a.value.is_empty() {
            out.clear();
        } else {
            out.push(a.value.clone());
        }
    }
    out
}

/// `path` under `root` (an absolute path with its leading `/` dropped).
pub fn rooted(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Loads unit `name` under `root` as systemd would find it.
pub fn load(root: &Path, name: &str) -> io::Result<Found> {
    let mut main = None;
    for dir in UNIT_DIRS {
        let path = root.join(dir).join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) => {
                let mut target = path.clone();
                if meta.file_type().is_symlink() {
                    let link = fs::read_link(&path)?;
                    if link == Path::new("/dev/null") {
                        return Ok(Found::Masked(path));
                    }
                    target = if link.is_absolute() {
                        rooted(root, &link)
                    } else {
                        path.parent().unwrap_or(root).join(link)
                    };
                }
                main = Some(target);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let Some(file) = main else { return Ok(Found::Missing) };
    let mut assignments = parse(&fs::read_to_string(&file)?);
    // Drop-ins by file name; a name in a higher directory hides the same
    // name below it; applied in name order.
    let mut dropins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in UNIT_DIRS.iter().rev() {
        let dir = root.join(dir).join(format!("{name}.d"));
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.ends_with(".conf") {
                dropins.insert(file_name, entry.path());
            }
        }
    }
    for path in dropins.values() {
        assignments.extend(parse(&fs::read_to_string(path)?));
    }
    Ok(Found::Unit(Unit {
        name: name.to_string(),
        file,
        dropins: dropins.into_values().collect(),
        assignments,
    }))
}

/// Splits a command line into words as systemd does: whitespace separates,
/// double and single quotes group, a backslash escapes the next character.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The environment a unit's commands see from `Environment=` and
/// `EnvironmentFile=` (a `-` before the path: the file may be missing).
pub fn environment(root: &Path, unit: &Unit) -> io::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for a in unit.assignments.iter().filter(|a| a.section == "Service") {
        match a.key.as_str() {
            "Environment" => {
                for word in split_words(&a.value) {
                    if let Some((k, v)) = word.split_once('=') {
                        env.insert(k.to_string(), v.to_string());
                    }
                }
            }
            "EnvironmentFile" if !a.value.is_empty() => {
                let (optional, path) = match a.value.strip_prefix('-') {
                    Some(path) => (true, path),
                    None => (false, a.value.as_str()),
                };
                match fs::read_to_string(rooted(root, Path::new(path))) {
                    Ok(text) => {
                        for line in text.lines() {
                            let line = line.trim();
                            if line.starts_with('#') || line.starts_with(';') {
                                continue;
                            }
                            if let Some((k, v)) = line.split_once('=') {
                                let v = split_words(v).join(" ");
                                env.insert(k.trim().to_string(), v);
                            }
                        }
                    }
                    Err(e) if optional && e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io::Error::new(e.kind(), format!("EnvironmentFile {path}: {e}"))),
                }
            }
            _ => {}
        }
    }
    Ok(env)
}

/// An `ExecStart` value as the words of the command systemd runs: the
/// special prefixes (`-`, `@`, `:`, `+`, `!`) dropped, `$VAR` as a word of
/// its own split into words, `${VAR}` replaced inside a word.
pub fn command_words(exec: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    let exec = exec.trim_start_matches(['-', '@', ':', '+', '!']);
    let mut out = Vec::new();
    for word in split_words(exec) {
        if let Some(name) = word.strip_prefix('$').filter(|n| !n.starts_with('{')) {
            if let Some(value) = env.get(name) {
                out.extend(value.split_whitespace().map(str::to_string));
            }
            continue;
        }
        let mut word = word;
        while let Some(start) = word.find("${") {
            let Some(len) = word[start..].find('}') else { break };
            let name = word[start + 2..start + len].to_string();
            let value = env.get(&name).cloned().unwrap_or_default();
            word.replace_range(start..start + len + 1, &value);
        }
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_continuations_and_comments() {
        let text =
            "[Service]\n# c\nExecStart=/a \\\n  -x\nExecStart=\nExecStart=/b -y\n; c\n[Socket]\nListenStream=/run/x\n";
        let a = parse(text);
        assert_eq!(values(&a, "Service", "ExecStart"), vec!["/b -y"]);
        assert_eq!(values(&a, "Socket", "ListenStream"), vec!["/run/x"]);
        let a = parse("[Service]\nExecStart=/a \\\n  -x\n");
        assert_eq!(values(&a, "Service", "ExecStart"), vec!["/a  -x"]);
    }

    #[test]
    fn words_and_variables() {
        let mut env = BTreeMap::new();
        env.insert("DOCKER_OPTS".to_string(), "-H tcp://0.0.0.0:2375 --debug".to_string());
        env.insert("D".to_string(), "/usr/sbin".to_string());
        let words = command_words("-${D}/dockerd -H fd:// \"--label=a b\" $DOCKER_OPTS $UNSET", &env);
        assert_eq!(
            words,
            vec![
                "/usr/sbin/dockerd",
                "-H",
                "fd://",
                "--label=a b",
                "-H",
                "tcp://0.0.0.0:2375",
                "--debug"
            ]
        );
    }
}
