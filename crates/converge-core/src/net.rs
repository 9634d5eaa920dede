//! Which network addresses the server may fetch from on a user's behalf (URL previews,
//! outgoing webhooks): the SSRF blocklist, and CIDR allow/deny lists.

use std::net::IpAddr;
use std::str::FromStr;

/// An address range such as `10.0.0.0/8` or `fe80::/10`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_matches(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_matches(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn mask_matches(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

/// Ranges never fetched unless allowlisted: loopback, private, link-local, CGNAT,
/// multicast, unspecified, broadcast, reserved and documentation ranges, and the IPv6
/// forms that embed IPv4 addresses.
const BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "100::/64",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Whether `ip` is in a range the server must not fetch from by default.
pub fn is_blocked(ip: IpAddr) -> bool {
    // Mapped addresses are blocked whatever they embed: no legitimate preview needs that
    // form, and it is a classic way around IPv4 checks.
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return true;
    }
    BLOCKED.iter().any(|range| {
        range
            .parse::<Cidr>()
            .expect("built-in ranges parse")
            .contains(ip)
    })
}

/// The decision for one address: allowlisted ranges win, then the deny list, then the
/// built-in blocklist.
pub fn may_fetch(ip: IpAddr, allow: &[Cidr], deny: &[Cidr]) -> bool {
    if allow.iter().any(|c| c.contains(ip)) {
        return true;
    }
    !(deny.iter().any(|c| c.contains(ip)) || is_blocked(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocklist() {
        let cases = [
            ("127.0.0.1", true),
            ("127.255.0.9", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("100.128.0.1", false),
            ("224.0.0.1", true),
            ("0.0.0.0", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            ("93.184.216.34", false),
            ("::1", true),
            ("::", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:8.8.8.8", true),
            ("fe80::1", true),
            ("fd00::1", true),
            ("ff02::1", true),
            ("2606:4700::1111", false),
        ];
        for (ip, blocked) in cases {
            assert_eq!(is_blocked(ip.parse().unwrap()), blocked, "{ip}");
        }
    }

    #[test]
    fn allow_and_deny_lists() {
        let allow: Vec<Cidr> = vec!["127.0.0.2/32".parse().unwrap()];
        let deny: Vec<Cidr> = vec!["8.8.8.0/24".parse().unwrap()];
        assert!(may_fetch("127.0.0.2".parse().unwrap(), &allow, &deny));
        assert!(!may_fetch("127.0.0.1".parse().unwrap(), &allow, &deny));
        assert!(!may_fetch("8.8.8.8".parse().unwrap(), &allow, &deny));
        assert!(may_fetch("8.8.4.4".parse().unwrap(), &allow, &deny));
    }

    #[test]
    fn ranges_parse() {
        assert!(
            "10.0.0.0/8"
                .parse::<Cidr>()
                .unwrap()
                .contains("10.9.9.9".parse().unwrap())
        );
        assert!(
            "::/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("2001::1".parse().unwrap())
        );
        assert!(
            "1.2.3.4"
                .parse::<Cidr>()
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "x/8", "fe80::/129", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
