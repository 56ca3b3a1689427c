//! `--source-ca-bundle`: a file whose contents every volume's CA file holds. Watched by polling
//! its modification time and size (every [`POLL_INTERVAL`]; a ConfigMap or Secret mounted into the
//! driver's pod changes by a symlink swap, which polling the path follows without the re-arming
//! an inotify watch needs), and re-read when either changes; the contents are compared, so only
//! a real change rewrites the volumes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;

/// How often the file is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The bundle as last read.
#[derive(Debug)]
pub struct CaBundle {
    path: PathBuf,
    state: RwLock<State>,
}

#[derive(Debug)]
struct State {
    contents: String,
    stamp: Option<(SystemTime, u64)>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

fn read(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path)
        .map_err(|error| format!("reading --source-ca-bundle {}: {error}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| {
        format!(
            "--source-ca-bundle {} is not text (PEM certificates expected)",
            path.display()
        )
    })
}

impl CaBundle {
    /// Reads the bundle; failing is fatal at start, as upstream's is.
    pub fn load(path: &Path) -> Result<CaBundle, String> {
        let stamp = stamp(path);
        let contents = read(path)?;
        Ok(CaBundle {
            path: path.to_path_buf(),
            state: RwLock::new(State { contents, stamp }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bundle's current contents.
    pub fn pem(&self) -> String {
        self.state.read().contents.clone()
    }

    /// Looks at the file again: `true` when its contents changed (now held). A file that is
    /// missing or unreadable for a moment keeps the previous contents.
    pub fn refresh(&self) -> bool {
        let now = stamp(&self.path);
        if now.is_none() || now == self.state.read().stamp {
            return false;
        }
        match read(&self.path) {
            Ok(contents) => {
                let mut state = self.state.write();
                state.stamp = now;
                if state.contents == contents {
                    return false;
                }
                state.contents = contents;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the CA bundle; keeping the previous one");
                false
            }
        }
    }

    /// Polls the file until the process ends, calling `changed` after each change.
    pub async fn watch<F, Fut>(self: std::sync::Arc<Self>, interval: Duration, changed: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let this = std::sync::Arc::clone(&self);
            let refreshed = tokio::task::spawn_blocking(move || this.refresh())
                .await
                .unwrap_or(false);
            if refreshed {
                tracing::info!(file = %self.path.display(), "CA bundle changed; rewriting the CA file of every volume");
                changed().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_a_change_of_contents_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "one").unwrap();
        let bundle = CaBundle::load(&path).unwrap();
        assert_eq!(bundle.pem(), "one");
        assert!(!bundle.refresh());
        std::fs::write(&path, "two!").unwrap();
        assert!(bundle.refresh());
        assert_eq!(bundle.pem(), "two!");
        std::fs::remove_file(&path).unwrap();
        assert!(!bundle.refresh());
        assert_eq!(bundle.pem(), "two!");
        assert!(CaBundle::load(&dir.path().join("missing")).is_err());
    }
}
