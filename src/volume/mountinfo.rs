//! Parser for `/proc/self/mountinfo` (proc(5)): which paths are mount points, and of what.

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    pub device: String,
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub mount_options: String,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

/// Undoes the kernel's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && index + 3 < bytes.len()
            && bytes[index + 1..index + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = (bytes[index + 1] - b'0') as u32 * 64
                + (bytes[index + 2] - b'0') as u32 * 8
                + (bytes[index + 3] - b'0') as u32;
            out.push(value as u8);
            index += 4;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one mountinfo line; `None` for a malformed line.
pub fn parse_line(line: &str) -> Option<MountEntry> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let mount_id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let device = fields.next()?.to_string();
    let root = PathBuf::from(unescape(fields.next()?));
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let mount_options = fields.next()?.to_string();
    let mut tail = after.split(' ');
    let fs_type = tail.next()?.to_string();
    let source = unescape(tail.next()?);
    let super_options = tail.next().unwrap_or("").to_string();
    Some(MountEntry {
        mount_id,
        parent_id,
        device,
        root,
        mount_point,
        mount_options,
        fs_type,
        source,
        super_options,
    })
}

/// Parses a whole mountinfo file, skipping malformed lines.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// The current mount table of this process's mount namespace.
pub fn read_current() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The last (topmost) mount at `path`, if any.
pub fn find_mount<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    entries.iter().rev().find(|entry| entry.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
25 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=10240k,nr_inodes=1000,mode=755
481 22 0:62 / /var/lib/kubelet/pods/1234/volumes/kubernetes.io~csi/tls/mount rw,nosuid,nodev,noexec,relatime shared:300 - tmpfs tmpfs rw,size=1024k,mode=755
482 22 0:63 / /mnt/with\\040space rw,relatime - tmpfs my\\040src rw
garbage line
";

    #[test]
    fn parses_fields_and_optional_tags() {
        let entries = parse(FIXTURE);
        assert_eq!(entries.len(), 4);
        let tmpfs = &entries[2];
        assert_eq!(tmpfs.mount_id, 481);
        assert_eq!(tmpfs.parent_id, 22);
        assert_eq!(tmpfs.device, "0:62");
        assert_eq!(tmpfs.fs_type, "tmpfs");
        assert_eq!(tmpfs.mount_options, "rw,nosuid,nodev,noexec,relatime");
        assert!(tmpfs.super_options.contains("size=1024k"));
    }

    #[test]
    fn unescapes_spaces() {
        let entries = parse(FIXTURE);
        assert_eq!(entries[3].mount_point, Path::new("/mnt/with space"));
        assert_eq!(entries[3].source, "my src");
    }

    #[test]
    fn finds_mount_points_exactly() {
        let entries = parse(FIXTURE);
        let target = Path::new("/var/lib/kubelet/pods/1234/volumes/kubernetes.io~csi/tls/mount");
        assert_eq!(find_mount(&entries, target).unwrap().mount_id, 481);
        assert!(find_mount(&entries, Path::new("/var/lib/kubelet")).is_none());
    }

    #[test]
    fn reads_this_process_table() {
        let entries = read_current().unwrap();
        assert!(
            entries
                .iter()
                .any(|entry| entry.mount_point == Path::new("/"))
        );
    }
}
