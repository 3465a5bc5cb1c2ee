//! EXPOSE port specifications: `[ip:][hostPort[-range]:]containerPort[-range][/proto]`.
//!
//! Only the container side matters to an image; ranges are expanded to one `port/proto`
//! entry each, with `tcp` as the default protocol, the way BuildKit's converter does it.

use std::net::IpAddr;

fn invalid(spec: &str, why: &str) -> String {
    format!("invalid port: {}: {why}", crate::strconv::go_quote(spec))
}

fn parse_range(text: &str) -> Option<(u32, u32)> {
    let (start, end) = match text.split_once('-') {
        Some((a, b)) => (a, b),
        None => (text, text),
    };
    let start: u16 = start.parse().ok()?;
    let end: u16 = end.parse().ok()?;
    (start <= end).then_some((u32::from(start), u32::from(end)))
}

/// Expand one spec to `port/proto` strings.
///
/// # Errors
/// A message in BuildKit's form (`invalid port: "...": no port specified`).
pub fn parse_spec(spec: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    let (ip, host_port, container) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (container, proto) = match container.split_once('/') {
        Some((port, proto)) => (port, proto.to_ascii_lowercase()),
        None => (container, "tcp".to_string()),
    };
    let proto = if proto.is_empty() { "tcp".to_string() } else { proto };
    if !ip.is_empty() {
        let bare = ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(&ip);
        if bare.parse::<IpAddr>().is_err() {
            return Err(invalid(spec, &format!("invalid IP address: {ip}")));
        }
    }
    if container.is_empty() {
        return Err(invalid(spec, "no port specified"));
    }
    let (start, end) =
        parse_range(container).ok_or_else(|| invalid(spec, &format!("invalid containerPort: {container}")))?;
    if !host_port.is_empty() {
        let (hs, he) =
            parse_range(host_port).ok_or_else(|| invalid(spec, &format!("invalid hostPort: {host_port}")))?;
        if end - start != he - hs && end != start {
            return Err(invalid(
                spec,
                &format!("invalid ranges specified for container and host Ports: {container} and {host_port}"),
            ));
        }
    }
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid(spec, &format!("invalid proto: {proto}")));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Expand several specs, sorted and without repeats (the image keeps a set).
///
/// # Errors
/// The first bad spec.
pub fn parse_specs<S: AsRef<str>>(specs: &[S]) -> Result<Vec<String>, String> {
    let mut ports = Vec::new();
    for spec in specs {
        ports.extend(parse_spec(spec.as_ref())?);
    }
    ports.sort();
    ports.dedup();
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    // GO_TEST_CASES.md D2.
    #[test]
    fn single_specs() {
        assert_eq!(parse_spec("").unwrap_err(), "invalid port: \"\": no port specified");
        assert_eq!(
            parse_spec("0.0.0.0:1234-1235:/tcp").unwrap_err(),
            "invalid port: \"0.0.0.0:1234-1235:/tcp\": no port specified"
        );
        assert_eq!(
            parse_spec("0.0.0.0:1234-1235:").unwrap_err(),
            "invalid port: \"0.0.0.0:1234-1235:\": no port specified"
        );
        assert_eq!(parse_spec("0.0.0.0:1234-1235:3333-3334/tcp").unwrap(), vec!["3333/tcp", "3334/tcp"]);
        for (spec, port) in [
            ("[2001:4860:0:2001::68]::333", "333/tcp"),
            ("[::1]:80:80", "80/tcp"),
            ("2001:4860:0:2001::68::333", "333/tcp"),
            ("::1:80:80", "80/tcp"),
            ("::::80", "80/tcp"),
        ] {
            assert_eq!(parse_spec(spec).unwrap(), vec![port], "{spec}");
        }
    }

    #[test]
    fn spec_lists() {
        let want = vec!["1234/tcp", "2345/udp", "3456/sctp"];
        assert_eq!(parse_specs(&["1234/tcp", "2345/udp", "3456/sctp"]).unwrap(), want);
        assert_eq!(parse_specs(&["1234:1234/tcp", "2345:2345/udp", "3456:3456/sctp"]).unwrap(), want);
        assert_eq!(
            parse_specs(&["0.0.0.0:1234:1234/tcp", "0.0.0.0:2345:2345/udp", "0.0.0.0:3456:3456/sctp"]).unwrap(),
            want
        );
        assert!(parse_specs(&["localhost:1234:1234/tcp"]).is_err());
        assert!(parse_specs(&["localhost:1234-1236:1234-1236/tcp"]).is_err());
        let ranges = vec![
            "1234/tcp",
            "1235/tcp",
            "1236/tcp",
            "2345/udp",
            "2346/udp",
            "2347/udp",
            "3456/sctp",
            "3457/sctp",
            "3458/sctp",
        ];
        assert_eq!(parse_specs(&["1234-1236/tcp", "2345-2347/udp", "3456-3458/sctp"]).unwrap(), ranges);
        assert_eq!(
            parse_specs(&["1234-1236:1234-1236/tcp", "2345-2347:2345-2347/udp", "3456-3458:3456-3458/sctp"]).unwrap(),
            ranges
        );
        assert_eq!(
            parse_specs(&[
                "0.0.0.0:1234-1236:1234-1236/tcp",
                "0.0.0.0:2345-2347:2345-2347/udp",
                "0.0.0.0:3456-3458:3456-3458/sctp"
            ])
            .unwrap(),
            ranges
        );
    }

    #[test]
    fn bad_ports() {
        assert!(parse_spec("70000").is_err());
        assert!(parse_spec("80/icmp").unwrap_err().contains("invalid proto"));
        assert!(parse_spec("90-80").is_err());
    }
}
