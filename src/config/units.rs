//! Human-readable units used in `shim.yml`: byte sizes (`512M`, `1.5G`,
//! `128MB`), durations (`300`, `30s`, `5m`, `1h30m`) and CPU counts (`0.5`,
//! `"2"`).
//!
//! Each type deserializes from either a YAML number or a string, so that the
//! seed's `idle_timeout: 300` and our `idle_timeout: 5m` mean the same thing.
//! Parsing errors are plain `String`s: serde attaches the file position.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A size in bytes. Suffixes are binary (`K` = 1024), as Docker's own
/// `--memory 512m` is, with or without a trailing `B`/`iB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn parse(input: &str) -> Result<ByteSize, String> {
        let text = input.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("invalid size {input:?}: expected e.g. 512M, 1G, 1048576"))?;
        let unit = unit.trim().to_ascii_lowercase();
        let multiplier: u64 = match unit.as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => {
                return Err(format!(
                    "invalid size {input:?}: unknown unit {unit:?} (use B, K, M, G or T)"
                ))
            }
        };
        let bytes = number * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(format!("invalid size {input:?}: out of range"));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    /// Prints the largest unit that divides the size exactly, so `512M`
    /// round-trips and warnings read naturally.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [(1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
        for (size, suffix) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{}", self.0 / size, suffix);
            }
        }
        if self.0 >= 1 << 20 {
            return write!(f, "{:.1}M", self.0 as f64 / (1u64 << 20) as f64);
        }
        write!(f, "{}B", self.0)
    }
}

/// A duration. A bare number is seconds (the seed's form); strings take
/// `ms`, `s`, `m`, `h` and `d` and may chain them (`1h30m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn from_secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }

    pub fn parse(input: &str) -> Result<HumanDuration, String> {
        let text = input.trim();
        if text.is_empty() {
            return Err("invalid duration \"\": expected e.g. 30s, 5m, 300".to_string());
        }
        if let Ok(secs) = text.parse::<f64>() {
            return secs_to_duration(secs)
                .map(HumanDuration)
                .ok_or_else(|| format!("invalid duration {input:?}: out of range"));
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("invalid duration {input:?}: a number needs a unit (ms, s, m, h, d)"))?;
            let (number, tail) = rest.split_at(digits);
            let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let number: f64 = number
                .parse()
                .map_err(|_| format!("invalid duration {input:?}: expected e.g. 30s, 5m, 1h30m"))?;
            let scale = match unit.trim() {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                other => {
                    return Err(format!(
                        "invalid duration {input:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                    ))
                }
            };
            total +=
                secs_to_duration(number * scale).ok_or_else(|| format!("invalid duration {input:?}: out of range"))?;
            rest = tail;
        }
        Ok(HumanDuration(total))
    }
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    if (0.0..1e12).contains(&secs) {
        Some(Duration::from_secs_f64(secs))
    } else {
        None
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() != 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let secs = d.as_secs();
        if secs != 0 && secs % 3600 == 0 {
            write!(f, "{}h", secs / 3600)
        } else if secs != 0 && secs % 60 == 0 {
            write!(f, "{}m", secs / 60)
        } else {
            write!(f, "{secs}s")
        }
    }
}

/// A CPU count (`0.5`, `2`), stored as Docker's `NanoCpus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpus(pub i64);

impl Cpus {
    pub fn nano_cpus(self) -> i64 {
        self.0
    }

    pub fn parse(input: &str) -> Result<Cpus, String> {
        let value: f64 = input
            .trim()
            .parse()
            .map_err(|_| format!("invalid CPU count {input:?}: expected e.g. 0.5 or 2"))?;
        Cpus::from_f64(value).ok_or_else(|| format!("invalid CPU count {input:?}: must be above 0 and at most 1024"))
    }

    fn from_f64(value: f64) -> Option<Cpus> {
        if value.is_finite() && value > 0.0 && value <= 1024.0 {
            Some(Cpus((value * 1e9).round() as i64))
        } else {
            None
        }
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0 as f64 / 1e9;
        if value.fract() == 0.0 {
            write!(f, "{}", value as i64)
        } else {
            write!(f, "{value}")
        }
    }
}

/// One visitor for the three unit types: numbers and strings both go through
/// the type's `parse`, so the two spellings can never disagree.
macro_rules! human_serde {
    ($ty:ident, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$ty, D::Error> {
                struct HumanVisitor;
                impl Visitor<'_> for HumanVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        $ty::parse(v).map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        $ty::parse(&v.to_string()).map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        $ty::parse(&v.to_string()).map_err(E::custom)
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$ty, E> {
                        $ty::parse(&v.to_string()).map_err(E::custom)
                    }
                }
                deserializer.deserialize_any(HumanVisitor)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

human_serde!(ByteSize, "a size such as 512M or 1G");
human_serde!(HumanDuration, "a duration such as 30s, 5m or 300 (seconds)");
human_serde!(Cpus, "a CPU count such as 0.5 or 2");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases = [
            ("512M", Some(512 << 20)),
            ("512m", Some(512 << 20)),
            ("128MB", Some(128 << 20)),
            ("1.5G", Some(3 << 29)),
            ("1GiB", Some(1 << 30)),
            ("1048576", Some(1 << 20)),
            ("10 K", Some(10 << 10)),
            ("", None),
            ("12Q", None),
            ("-1M", None),
            ("M", None),
        ];
        for (input, expected) in cases {
            assert_eq!(ByteSize::parse(input).ok().map(ByteSize::bytes), expected, "{input}");
        }
        assert_eq!(ByteSize(512 << 20).to_string(), "512M");
        assert_eq!(ByteSize(1 << 30).to_string(), "1G");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    #[test]
    fn durations() {
        let cases = [
            ("300", Some(300_000)),
            ("30s", Some(30_000)),
            ("5m", Some(300_000)),
            ("1h30m", Some(5_400_000)),
            ("250ms", Some(250)),
            ("1.5s", Some(1_500)),
            ("2d", Some(172_800_000)),
            ("", None),
            ("5 minutes", None),
            ("10x", None),
            ("-3", None),
        ];
        for (input, expected) in cases {
            let parsed = HumanDuration::parse(input).ok().map(|d| d.0.as_millis() as u64);
            assert_eq!(parsed, expected, "{input}");
        }
        assert_eq!(HumanDuration::from_secs(300).to_string(), "5m");
        assert_eq!(HumanDuration::from_secs(7200).to_string(), "2h");
        assert_eq!(HumanDuration::from_secs(45).to_string(), "45s");
    }

    #[test]
    fn cpus() {
        assert_eq!(Cpus::parse("0.5").unwrap().nano_cpus(), 500_000_000);
        assert_eq!(Cpus::parse("2").unwrap().nano_cpus(), 2_000_000_000);
        assert!(Cpus::parse("0").is_err());
        assert!(Cpus::parse("lots").is_err());
        assert_eq!(Cpus(1_500_000_000).to_string(), "1.5");
        assert_eq!(Cpus(2_000_000_000).to_string(), "2");
    }

    #[test]
    fn numbers_and_strings_agree() {
        let from_number: HumanDuration = serde_norway::from_str("300").unwrap();
        let from_string: HumanDuration = serde_norway::from_str("\"5m\"").unwrap();
        assert_eq!(from_number, from_string);
        let size: ByteSize = serde_norway::from_str("134217728").unwrap();
        assert_eq!(size, ByteSize::parse("128M").unwrap());
        let cpus: Cpus = serde_norway::from_str("0.25").unwrap();
        assert_eq!(cpus.nano_cpus(), 250_000_000);
    }
}
