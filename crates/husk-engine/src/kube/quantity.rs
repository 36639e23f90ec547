//! Kubernetes resource quantities ("64Mi", "500m", "1.5", "2e3", "1G"), parsed exactly as
//! the API server reads them: a decimal number, then one suffix — binary (Ki Mi Gi Ti Pi
//! Ei), decimal (n u m k M G T P E) or an exponent (e3, E-2). A value is kept as an exact
//! integer times powers of ten and of 1024, so "0.1" CPU is 100 millicores, not 99.
//! Rounding is Kubernetes': up (a memory of "0.5" is one byte, a CPU of "1n" one
//! millicore).

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A quantity that does not parse, or does not fit what it is used for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity {0:?}: expected a number with an optional suffix (64Mi, 500m, 1G)")]
    Number(String),
    #[error(
        "quantity {0:?}: unknown suffix {1:?} (use Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent e3)"
    )]
    Suffix(String, String),
    #[error("quantity {0:?}: must not be negative")]
    Negative(String),
    #[error("quantity {0:?}: too large")]
    TooLarge(String),
}

/// A parsed quantity: `mantissa` × 10^`exp10` × 1024^`exp1024`, and the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    text: String,
    mantissa: u128,
    exp10: i32,
    exp1024: u32,
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let bad = || QuantityError::Number(s.to_string());
        let t = s.trim();
        let t = t.strip_prefix('+').unwrap_or(t);
        if t.starts_with('-') {
            return Err(QuantityError::Negative(s.to_string()));
        }
        let num_len = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, suffix) = t.split_at(num_len);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() || frac.contains('.') {
            return Err(bad());
        }
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        // 38 digits always fit a u128.
        if digits.len() > 38 {
            return Err(QuantityError::TooLarge(s.to_string()));
        }
        let mantissa: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| bad())?
        };
        let mut exp10 = -(frac.len() as i32);
        let mut exp1024 = 0;
        match suffix {
            "" => {}
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                exp1024 = 1 + "KMGTPE".find(&suffix[..1]).unwrap() as u32;
            }
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            e if e.len() > 1 && (e.starts_with('e') || e.starts_with('E')) => {
                let n: i32 = e[1..]
                    .parse()
                    .ok()
                    .filter(|n: &i32| n.abs() <= 60)
                    .ok_or_else(|| QuantityError::Suffix(s.to_string(), e.to_string()))?;
                exp10 += n;
            }
            other => return Err(QuantityError::Suffix(s.to_string(), other.to_string())),
        }
        Ok(Quantity {
            text: s.trim().to_string(),
            mantissa,
            exp10,
            exp1024,
        })
    }

    /// The value × 10^`scale`, rounded up.
    fn ceil_scaled(&self, scale: i32) -> Result<u64, QuantityError> {
        let big = || QuantityError::TooLarge(self.text.clone());
        let mut n = self.mantissa;
        for _ in 0..self.exp1024 {
            n = n.checked_mul(1024).ok_or_else(big)?;
        }
        let e = self.exp10 + scale;
        if e >= 0 {
            let p = 10u128.checked_pow(e as u32).ok_or_else(big)?;
            n = n.checked_mul(p).ok_or_else(big)?;
        } else if n > 0 {
            n = match 10u128.checked_pow((-e) as u32) {
                Some(p) => n.div_ceil(p),
                // Smaller than one unit: rounded up to one.
                None => 1,
            };
        }
        u64::try_from(n).map_err(|_| big())
    }

    /// In bytes (memory).
    pub fn bytes(&self) -> Result<u64, QuantityError> {
        self.ceil_scaled(0)
    }

    /// In thousandths (CPUs as millicores).
    pub fn millis(&self) -> Result<u64, QuantityError> {
        self.ceil_scaled(3)
    }

    /// The form Kubernetes prints for a byte count: the largest binary suffix that divides it.
    pub fn from_bytes(n: u64) -> Quantity {
        let mut k = 0;
        let mut m = n;
        while m != 0 && m.is_multiple_of(1024) && k < 6 {
            m /= 1024;
            k += 1;
        }
        let text = match k {
            0 => m.to_string(),
            k => format!("{m}{}i", &"KMGTPE"[k - 1..k]),
        };
        Quantity::parse(&text).expect("a formatted quantity parses")
    }

    /// CPUs from millicores: whole CPUs as "2", else "500m".
    pub fn from_millis(m: u64) -> Quantity {
        let text = match m % 1000 {
            0 => (m / 1000).to_string(),
            _ => format!("{m}m"),
        };
        Quantity::parse(&text).expect("a formatted quantity parses")
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A quantity is a string in YAML, or a bare number (`cpu: 2`, `memory: 1e9`).
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            U(u64),
            F(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::U(n) => n.to_string(),
            Raw::F(x) => x.to_string(),
        };
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn memory_in_bytes_as_kubernetes_reads_it() {
        assert_eq!(q("64Mi").bytes(), Ok(64 << 20));
        assert_eq!(q("1Gi").bytes(), Ok(1 << 30));
        assert_eq!(q("128M").bytes(), Ok(128_000_000));
        assert_eq!(q("1.5Gi").bytes(), Ok(3 << 29));
        assert_eq!(q("1e3").bytes(), Ok(1000));
        assert_eq!(q("12E-1").bytes(), Ok(2));
        assert_eq!(q("1000").bytes(), Ok(1000));
        assert_eq!(q("0.5").bytes(), Ok(1), "rounded up");
        assert_eq!(q("+2k").bytes(), Ok(2000));
        assert_eq!(q("0").bytes(), Ok(0));
    }

    #[test]
    fn cpus_in_millicores() {
        assert_eq!(q("500m").millis(), Ok(500));
        assert_eq!(q("0.1").millis(), Ok(100));
        assert_eq!(q("2").millis(), Ok(2000));
        assert_eq!(q("1.25").millis(), Ok(1250));
        assert_eq!(q("1n").millis(), Ok(1), "rounded up");
        assert_eq!(q(".5").millis(), Ok(500));
    }

    #[test]
    fn bad_quantities_are_typed_errors() {
        let e = |s: &str| Quantity::parse(s).unwrap_err();
        assert_eq!(e("64MB"), QuantityError::Suffix("64MB".into(), "MB".into()));
        assert_eq!(e("lots"), QuantityError::Number("lots".into()));
        assert_eq!(e(""), QuantityError::Number("".into()));
        assert_eq!(e("1.2.3"), QuantityError::Number("1.2.3".into()));
        assert_eq!(e("-1Gi"), QuantityError::Negative("-1Gi".into()));
        assert_eq!(e("1e"), QuantityError::Suffix("1e".into(), "e".into()));
        assert_eq!(
            q("99999999999999Ei").bytes(),
            Err(QuantityError::TooLarge("99999999999999Ei".into()))
        );
        assert!(e("64Q").to_string().contains("unknown suffix \"Q\""));
    }

    #[test]
    fn printed_as_kubernetes_prints_them() {
        assert_eq!(Quantity::from_bytes(64 << 20).to_string(), "64Mi");
        assert_eq!(Quantity::from_bytes(1000).to_string(), "1000");
        assert_eq!(Quantity::from_bytes(3 << 29).to_string(), "1536Mi");
        assert_eq!(Quantity::from_millis(500).to_string(), "500m");
        assert_eq!(Quantity::from_millis(2000).to_string(), "2");
    }

    #[test]
    fn numbers_in_yaml_are_quantities_too() {
        let v: Quantity = serde_yaml_ng::from_str("2").unwrap();
        assert_eq!(v.millis(), Ok(2000));
        let v: Quantity = serde_yaml_ng::from_str("0.5").unwrap();
        assert_eq!(v.millis(), Ok(500));
        let v: Quantity = serde_yaml_ng::from_str("\"64Mi\"").unwrap();
        assert_eq!(v.bytes(), Ok(64 << 20));
    }
}
