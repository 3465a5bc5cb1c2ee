//! What an ELF header says about the machine a Linux program is for, in the names OCI
//! platforms use (`amd64`, `arm64`), so a step can be refused before it runs on the wrong
//! one. Reads the first 20 bytes it is given and nothing else.

/// The architecture of the ELF program whose first bytes are `head`, as OCI names it;
/// `None` when `head` is not an ELF header.
pub fn arch(head: &[u8]) -> Option<&'static str> {
    if head.len() < 20 || !head.starts_with(b"\x7fELF") {
        return None;
    }
    // e_machine, in the byte order EI_DATA gives (1 little-endian, 2 big-endian).
    let bytes = [head[18], head[19]];
    let machine = if head[5] == 2 { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) };
    let is_64 = head[4] == 2;
    Some(match (machine, is_64) {
        (3, _) => "386",
        (62, _) => "amd64",
        (40, _) => "arm",
        (183, _) => "arm64",
        (243, true) => "riscv64",
        (21, _) => "ppc64le",
        (22, _) => "s390x",
        (8, _) => "mips",
        (258, _) => "loong64",
        _ => "unknown-architecture",
    })
}

/// The architecture kiln runs on, as OCI names it.
pub fn host_arch() -> &'static str {
    crate::platform::oci_arch(std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = b"\x7fELF".to_vec();
        h.extend([class, data, 1, 0]);
        h.resize(18, 0);
        h.extend(if data == 2 { machine.to_be_bytes() } else { machine.to_le_bytes() });
        h
    }

    #[test]
    fn machines_by_their_oci_names() {
        assert_eq!(arch(&header(2, 1, 62)), Some("amd64"));
        assert_eq!(arch(&header(2, 1, 183)), Some("arm64"));
        assert_eq!(arch(&header(1, 1, 3)), Some("386"));
        assert_eq!(arch(&header(2, 2, 22)), Some("s390x"));
        assert_eq!(arch(&header(2, 1, 9999)), Some("unknown-architecture"));
        assert_eq!(arch(b"\0asm\x01\0\0\0"), None);
        assert_eq!(arch(b"\x7fELF"), None);
    }
}
