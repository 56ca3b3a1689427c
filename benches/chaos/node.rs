//! The node and the driver process: kubelet's pod directories, the driver binary killed and
//! restarted in place, and the cleanup whatever ends the run.

use super::*;

/// The node directory: kubelet's pod directories, the driver's data root, socket and log.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) dir: PathBuf,
}

impl Node {
    pub(crate) fn create(seed: u64) -> BenchResult<Node> {
        let dir = std::env::temp_dir().join(format!(
            "cm-csi-chaos-{}-{:x}",
            std::process::id(),
            seed & 0xffff
        ));
        std::fs::create_dir_all(&dir)?;
        // Mount points in mountinfo are canonical paths.
        let node = Node {
            dir: dir.canonicalize()?,
        };
        // The data root on a filesystem of its own, small enough to be filled for a spell.
        std::fs::create_dir_all(node.data_root())?;
        rustix::mount::mount(
            "chaos-data-root",
            node.data_root(),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            std::ffi::CString::new(format!("size={DATA_ROOT_BYTES},mode=0700"))
                .expect("no NUL")
                .as_c_str(),
        )?;
        Ok(node)
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("plugin/csi.sock")
    }

    pub(crate) fn data_root(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.dir.join("driver.log")
    }

    pub(crate) fn pods(&self) -> PathBuf {
        self.dir.join("kubelet/pods")
    }

    /// A kubelet-shaped target path; kubelet creates its parent, the driver the target itself.
    pub(crate) fn target(&self, pod: &str) -> std::io::Result<PathBuf> {
        let parent = self.pods().join(pod).join("volumes/kubernetes.io~csi/tls");
        std::fs::create_dir_all(&parent)?;
        Ok(parent.join("mount"))
    }

    pub(crate) fn mounts(&self) -> Vec<PathBuf> {
        mountinfo::read_current()
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.mount_point)
            .filter(|point| point.starts_with(&self.dir))
            .collect()
    }

    /// Detaches every mount under the node directory, deepest first.
    pub(crate) fn unmount_all(&self) -> usize {
        let mut mounts = self.mounts();
        mounts.sort();
        for mount in mounts.iter().rev() {
            let _ = rustix::mount::unmount(mount, rustix::mount::UnmountFlags::DETACH);
        }
        mounts.len()
    }
}

/// The driver binary, killed and restarted in place. All output of every run goes to one log.
pub(crate) struct Driver {
    pub(crate) node: Node,
    pub(crate) child: Mutex<Option<Child>>,
    pub(crate) starts: AtomicUsize,
}

impl Driver {
    pub(crate) fn new(node: &Node) -> Driver {
        Driver {
            node: node.clone(),
            child: Mutex::new(None),
            starts: AtomicUsize::new(0),
        }
    }

    pub(crate) fn spawn(&self) -> BenchResult<()> {
        let start = self.starts.fetch_add(1, Ordering::Relaxed) + 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node.log())?;
        writeln!(log, "===== chaos: driver start #{start} =====")?;
        let child = Command::new(BINARY)
            .arg("--node-id=chaos-node")
            .arg(format!(
                "--endpoint=unix://{}",
                self.node.socket().display()
            ))
            .arg(format!("--data-root={}", self.node.data_root().display()))
            .arg("--issuer-backend=cert-manager")
            .arg(format!("--kubeconfig={}", self.node.kubeconfig().display()))
            .arg("--publish-timeout=20s")
            .arg("--renewal-backoff-initial=500ms")
            .arg("--renewal-backoff-max=5s")
            .arg("-v=2")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        *self.child.lock() = Some(child);
        Ok(())
    }

    /// SIGKILL: no chance to clean up, like an OOM kill.
    pub(crate) fn kill(&self) {
        if let Some(mut child) = self.child.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Connects once the driver answers Probe with ready.
pub(crate) async fn connect_when_serving(socket: &Path, limit: Duration) -> BenchResult<CsiClient> {
    let started = Instant::now();
    loop {
        if let Ok(mut csi) = client::connect(socket).await
            && let Ok(probe) = csi.identity.probe(ProbeRequest {}).await
            && probe.into_inner().ready == Some(true)
        {
            return Ok(csi);
        }
        if started.elapsed() > limit {
            return Err(format!("the driver did not serve within {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whatever ends the run (a panic, an error, Ctrl-C): the driver is killed and every mount under
/// the node directory detached; the directory is removed unless --keep.
pub(crate) struct Cleanup {
    pub(crate) node: Node,
    pub(crate) driver: Arc<Driver>,
    pub(crate) keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.driver.kill();
        // The data root's tmpfs is the bench's own; any other mount still up is the driver's.
        let data_root = self.node.data_root();
        let strays = self
            .node
            .mounts()
            .iter()
            .filter(|mount| **mount != data_root)
            .count();
        self.node.unmount_all();
        if strays > 0 {
            println!("cleanup: detached {strays} mounts still up under the node directory");
        }
        if !self.keep && self.node.mounts().is_empty() {
            let _ = std::fs::remove_dir_all(&self.node.dir);
        }
    }
}
